"""Bounded by design: the node cap, the in-memory bound, chunked streaming and preview limits.

A step past ``node_cap`` must switch to per-op aggregates with a clear warning, stay readable and
lose no op from the counts; a step past ``keep_in_memory`` is written in full but not kept as
objects; streaming a step in small chunks must write exactly what one big chunk writes.
"""
from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import gprof
from gprof.report import format_report, run_report
from gprof.store import StepReader, open_run


def _make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*(m for _ in range(4) for m in (torch.nn.Linear(16, 16), torch.nn.ReLU())))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    g = torch.Generator().manual_seed(3)
    loss = torch.nn.functional.mse_loss(model(torch.randn(4, 16, generator=g)), torch.randn(4, 16, generator=g))
    loss.backward()
    opt.step()
    opt.zero_grad()


def _warm_model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A model past its first step: the optimizer state exists, every later step has the same ops."""
    model, opt = _make()
    _step(model, opt)
    return model, opt


def _op_counts(tmp_path: Any, model: Any, opt: Any) -> dict[str, int]:
    """Ops of one uncapped recorded step, from its file: the reference a capped step must add up to.
    (A counting mode of our own would differ: each Python mode perturbs the stream slightly.)"""
    with gprof.profile(logdir=tmp_path, run="reference", analyze=False):
        _step(model, opt)
    with open_run(tmp_path / "reference").open(0) as r:
        return dict(r.sql("SELECT op, COUNT(*) FROM nodes GROUP BY op"))


def _record(tmp_path: Any, run: str, model: Any, opt: Any, steps: int = 1, **kw: Any) -> tuple[Any, list]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(logdir=tmp_path, run=run, **kw) as prof:
            for _ in range(steps):
                _step(model, opt)
                prof.step()
    return prof, [w for w in caught if "node cap" in str(w.message)]


def test_node_cap_switches_to_aggregates_with_a_warning(tmp_path: Any) -> None:
    model, opt = _warm_model()
    ops = _op_counts(tmp_path, model, opt)
    total = sum(ops.values())
    cap = 40
    assert total > 2 * cap
    _, cap_warnings = _record(tmp_path, "capped", model, opt, steps=2, node_cap=cap)

    # one clear warning per capped step, saying what happened and what to do
    assert len(cap_warnings) == 2
    msg = str(cap_warnings[0].message)
    assert f"{cap:,}" in msg and "aggregates" in msg and "node_cap=" in msg
    assert cap_warnings[0].category is RuntimeWarning

    run = open_run(tmp_path / "capped")
    assert run.steps() == [0, 1]
    for step in (0, 1):  # the cap is per step: the second step starts recording nodes again
        with run.open(step) as r:
            assert r.meta.aggregate_only
            assert r.count() == cap
            assert [n.idx for n in r.nodes()] == list(range(cap))
            agg = r.aggregates()
            # nothing is lost: the nodes plus the aggregates are every op of the step
            counted = {}
            for n in r.nodes():
                counted[n.op] = counted.get(n.op, 0) + 1
            for op, (count, total_ns) in agg.items():
                counted[op] = counted.get(op, 0) + count
                assert total_ns >= 0
            assert counted == ops

    report = run_report(run, step=1)
    step_report = report["steps"][0]
    assert step_report["aggregate_only"] is True
    assert sum(c for c, _ in step_report["aggregates"].values()) == total - cap
    assert "node cap reached" in format_report(report)


def test_steps_under_the_cap_are_not_aggregated(tmp_path: Any) -> None:
    model, opt = _warm_model()
    ops = _op_counts(tmp_path, model, opt)
    _, cap_warnings = _record(tmp_path, "uncapped", model, opt, node_cap=sum(ops.values()))
    assert cap_warnings == []
    with open_run(tmp_path / "uncapped").open(0) as r:
        assert not r.meta.aggregate_only and r.aggregates() == {} and r.count() == sum(ops.values())


def test_keep_in_memory_bounds_what_stays_in_python(tmp_path: Any) -> None:
    model, opt = _warm_model()
    total = sum(_op_counts(tmp_path, model, opt).values())
    prof, _ = _record(tmp_path, "small", model, opt, keep_in_memory=total)
    assert len(prof.graphs) == 1 and len(prof.graphs[0].nodes) == total
    prof, _ = _record(tmp_path, "big", model, opt, keep_in_memory=total // 3)
    assert prof.graphs == []  # too big to keep as objects ...
    with open_run(tmp_path / "big").open(0) as r:  # ... but written in full
        assert r.count() == total and not r.meta.aggregate_only
        assert len(r.edges()) > 0


def test_chunked_streaming_writes_what_one_chunk_writes(tmp_path: Any) -> None:
    """A million-node step streams to disk in chunks; chunk edges must not lose dataflow edges."""
    files = {}
    for name, chunk in (("one_chunk", 10**6), ("small_chunks", 7)):
        model, opt = _warm_model()
        prof = gprof.profile(logdir=tmp_path, run=name, analyze=False)
        prof.session.recorder.chunk_size = chunk  # internal: no public knob for the chunk size
        with prof:
            _step(model, opt)
        files[name] = open_run(tmp_path / name).file(0).path

    def content(path: Any) -> tuple[list, list]:
        with StepReader(path) as r:
            nodes = [(n.idx, n.key, n.op, n.phase, n.module, n.inputs, n.outputs, n.fwd, n.param, n.alloc_bytes)
                     for n in r.nodes()]
            edges = sorted((e.src, e.dst, e.storage, e.nbytes) for e in r.edges())
        return nodes, edges

    one_nodes, one_edges = content(files["one_chunk"])
    small_nodes, small_edges = content(files["small_chunks"])
    # storage ids are session-unique; both sessions saw the same storages in the same order
    assert small_nodes == one_nodes
    assert small_edges == one_edges
    assert len(one_edges) > len(one_nodes) // 2


def test_tensor_preview_is_limited_to_n_values(tmp_path: Any) -> None:
    x = torch.arange(1000, dtype=torch.float32)
    with gprof.profile(logdir=tmp_path, run="preview", tensor_preview=5, analyze=False) as prof:
        y = x * 2
        torch.stack([y, y]).sum(0)
    g = gprof.load(tmp_path / "preview")
    mul = next(n for n in g.nodes if n.op == "aten.mul.Tensor")
    assert mul.attrs["preview"] == [[0.0, 2.0, 4.0, 6.0, 8.0]]
    for n in g.nodes:
        for values in n.attrs.get("preview", []):
            assert values is None or len(values) <= 5
    assert prof.graphs


def test_preview_off_by_default_and_bounded(tmp_path: Any) -> None:
    with gprof.profile(logdir=tmp_path, run="nopreview", analyze=False):
        torch.arange(10.0) * 2
    nodes = gprof.load(tmp_path / "nopreview").nodes
    assert nodes, "the step recorded no node, so the check below would hold vacuously"
    assert all("preview" not in n.attrs for n in nodes)
    with pytest.raises(ValueError, match="tensor_preview must be between 0 and 4096"):
        gprof.profile(logdir=tmp_path, tensor_preview=10**6)
