"""Fused, foreach and for-loop optimizers on a small multi-module model (issue 13 point 5): an op that
updates every parameter is shared among the parameters' modules by size, the optimizer phase is
named as the optimizer, the advice carries a saving, and profiling changes no bit."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from stackutil import assert_bit_identical
from torch import nn

import gprof
from gprof.store.queries.modules import module_table
from gprof.store.step_file import StepReader

STEPS = 3
VARIANTS = {"fused": (torch.optim.AdamW, {"fused": True}), "foreach": (torch.optim.Adam, {"foreach": True}),
            "for-loop": (torch.optim.Adam, {"foreach": False})}


def _train(variant: str, prof: gprof.profile | None) -> tuple[list[torch.Tensor], nn.Module]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    cls, kw = VARIANTS[variant]
    opt = cls(model.parameters(), lr=1e-2, **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        model(torch.randn(8, 16, generator=g)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        if prof is not None:
            prof.step()
    return [p.detach().clone() for p in model.parameters()], model


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_optimizer_attribution_and_advice(variant: str, tmp_path: Path) -> None:
    reference, _ = _train(variant, None)
    with gprof.profile(logdir=tmp_path, run=variant) as prof:
        profiled, model = _train(variant, prof)
    assert_bit_identical(reference, profiled)
    graph = gprof.load(prof.run_dir, step=STEPS - 1)
    sizes = {name: p.numel() for name, p in model.named_parameters()}
    opt_nodes = [n for n in graph.nodes if n.phase == "optimizer"]
    shared = [n for n in opt_nodes if "param_shares" in n.attrs]
    if variant == "for-loop":
        assert not shared and all(n.module in {"0", "2", "4"} for n in opt_nodes if n.inputs)
    else:
        big = [n for n in shared if "_fused_" in n.op or "lerp" in n.op]
        assert big, [n.op for n in shared]
        for n in shared:
            assert n.module is None
            assert abs(sum(f for _, _, f in n.attrs["param_shares"]) - 1) < 1e-4
        for n in big:  # the shares follow parameter sizes
            total = sum(sizes.values())
            for module, param, fraction in n.attrs["param_shares"]:
                assert module == param.rpartition(".")[0]
                assert fraction == pytest.approx(sizes[param] / total, abs=2e-3)
        # the module table counts the shared ops for each module, by share
        reader = StepReader(next(prof.run_dir.glob(f"plugins/gprof/step{STEPS - 1:06d}.*.sqlite")))
        table = {e["module"]: e for e in module_table(reader)}
        shared_ns = sum(n.dur_ns for n in shared)
        assert sum(table[m]["optimizer_ns"] for m in ("0", "2", "4")) >= shared_ns - 3
        assert table["2"]["optimizer_ns"] > table["0"]["optimizer_ns"] > table["4"]["optimizer_ns"]
    [advice] = graph.analyses["optimizer_advice"]
    cls = "AdamW" if variant == "fused" else "Adam"
    assert advice["name"] == f"{cls}.step ({variant})"
    assert advice["modules"] == ["0", "2", "4"]
    if variant == "fused":
        assert advice["advice"] == []
    else:
        kinds = {a["kind"]: a for a in advice["advice"]}
        assert "fused" in kinds and "compile" in kinds
        assert kinds["fused"]["code"] == f"torch.optim.{cls}(model.parameters(), ..., fused=True)"
        assert 0 < kinds["fused"]["est_time_saved_ns"] <= advice["time_ns"]
