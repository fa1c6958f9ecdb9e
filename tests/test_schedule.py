"""gprof.schedule follows torch.profiler's conventions; no prof.step() means one step."""
from __future__ import annotations

import pytest
import torch

import gprof
from gprof.store import open_run


def _tiny_step(model: torch.nn.Module) -> None:
    model(torch.ones(2, 4)).sum().backward()


def test_schedule_records_only_active_steps(tmp_path):
    model = torch.nn.Linear(4, 3)
    sched = gprof.schedule(wait=1, warmup=1, active=2, repeat=1)
    with gprof.profile(logdir=tmp_path, run="sched", schedule=sched, analyze=False) as prof:
        for _ in range(6):
            _tiny_step(model)
            prof.step()
    # torch.profiler semantics: step 0 wait, step 1 warmup, steps 2-3 recorded, then nothing
    assert open_run(tmp_path / "sched").steps() == [2, 3]
    assert [g.meta.step for g in prof.graphs] == [2, 3]


def test_no_step_calls_is_one_step(tmp_path):
    model = torch.nn.Linear(4, 3)
    with gprof.profile(logdir=tmp_path, run="one", analyze=False) as prof:
        _tiny_step(model)
        _tiny_step(model)
    run = open_run(tmp_path / "one")
    assert run.steps() == [0]
    g = gprof.load(tmp_path / "one")
    assert sum(1 for n in g.nodes if n.op == "aten.addmm.default") == 2
    assert len(prof.graphs) == 1


def test_step_outside_block_is_an_error(tmp_path):
    prof = gprof.profile(logdir=tmp_path, run="x")
    with pytest.raises(RuntimeError, match="outside"):
        prof.step()


def test_bad_options_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="node_cap"):
        gprof.profile(logdir=tmp_path, node_cap=0)
    with pytest.raises(ValueError, match="tensor_preview"):
        gprof.profile(logdir=tmp_path, tensor_preview=-1)


def _profile_compiled(model: torch.nn.Module, tmp_path) -> tuple[gprof.StepGraph, list[gprof.Node]]:
    """Compile by running once outside the profiler, record one step, and check that recording
    did not make Dynamo compile anything new. Returns the graph and its compiled-region nodes."""
    from torch._dynamo.utils import counters

    x = torch.randn(4, 8)
    model(x).sum().backward()
    frames_before = counters["frames"]["total"]
    with gprof.profile(logdir=tmp_path, run="compiled", analyze=False) as prof:
        model(x).sum().backward()
    assert counters["frames"]["total"] == frames_before, "profiling must not trigger a recompile"
    g = prof.graphs[-1]
    return g, [n for n in g.nodes if n.op == "gprof.compiled_region"]


def test_compiled_module_is_one_opaque_node_each_way(tmp_path):
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.Linear(8, 8))
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.compile(inner))
    g, regions = _profile_compiled(model, tmp_path)
    assert [n.phase for n in regions] == ["forward", "backward"]
    fwd, bwd = regions
    assert fwd.module == "1" and bwd.module == "1"
    assert bwd.fwd == fwd.idx and fwd.dur_ns > 0
    # no eager GELU ran: the compiled code did
    assert not any(n.op.startswith("aten.gelu") for n in g.nodes)


def test_in_place_compiled_user_module_is_one_opaque_node(tmp_path):
    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.lin(x)) * 2

    torch.manual_seed(0)
    model = torch.nn.Sequential(Block(), torch.nn.Linear(8, 1))
    model[0].compile()
    g, regions = _profile_compiled(model, tmp_path)
    assert [(n.phase, n.module) for n in regions] == [("forward", "0"), ("backward", "0")]
    assert not any(n.op.startswith("aten.tanh") for n in g.nodes), "the fused tanh ran as compiled code"
