"""The raw record layout is written in one place and read by index in another: the named type and
the indices must agree, and what the recorder appends must have the documented shape."""
from __future__ import annotations

from typing import Any

import torch

import gprof
from gprof.capture import records as R


def test_indices_name_the_fields_of_the_record_type() -> None:
    names = {k: v for k, v in vars(R).items() if k.startswith("RAW_")}
    assert sorted(names.values()) == list(range(len(R.RawRecord._fields)))
    expected = {"RAW_OP": "op", "RAW_START": "start_ns", "RAW_DUR": "dur_ns", "RAW_THREAD": "thread",
                "RAW_MODULE": "module", "RAW_BACKWARD": "in_backward", "RAW_PEEK": "seq_peek",
                "RAW_AUTOGRAD": "autograd", "RAW_FRAME": "frame", "RAW_INPUTS": "inputs",
                "RAW_OUTPUTS": "outputs", "RAW_ALLOC": "alloc_bytes", "RAW_FREED": "freed_bytes",
                "RAW_LIVE": "live_bytes", "RAW_FLOPS": "flops", "RAW_OPTIMIZER": "in_optimizer",
                "RAW_EXTRA": "extra", "RAW_RECOMPUTE": "recompute"}
    assert {k: R.RawRecord._fields[v] for k, v in names.items()} == expected


def test_recorded_tuples_have_the_documented_layout(tmp_path: Any) -> None:
    records: list[tuple] = []
    model = torch.nn.Linear(4, 2)
    prof = gprof.profile(logdir=tmp_path, run="raw", analyze=False)
    rec = prof.session.recorder  # internal: the hand-over between recorder and builder is under test
    build = rec.build

    def keep(chunk: Any) -> Any:
        records.extend(chunk)
        return build(chunk)

    rec.build = keep
    prof.add_observer(lambda *a: None)  # every record is handed over at once
    with prof:
        model(torch.randn(3, 4)).sum().backward()
    assert records
    for raw in records:
        r = R.RawRecord._make(raw)
        assert isinstance(r.op, str) and r.dur_ns >= 0
        assert all(len(R.RawTensor._make(t)) == 4 for t in (*r.inputs, *r.outputs))
        if r.in_backward:
            assert len(R.AutogradInfo._make(r.autograd)) == 4
    assert "" in {R.RawRecord._make(r).module for r in records}, "the root module (named \"\") ran ops"
