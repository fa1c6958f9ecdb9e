"""Acceptance (issue 2): an exception inside the profiled step propagates unchanged; the partial step
is saved, marked incomplete, and ``torch-gprof report`` reads it (text and --json)."""
from __future__ import annotations

import contextlib
import json

import pytest
import torch
from conftest import gprof_cli
from torch import nn

import gprof
from gprof.cli import main


class Boom(RuntimeError):
    pass


class Exploding(nn.Module):
    def __init__(self, err: BaseException) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.err = err

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fc(x).relu()  # recorded, then the step fails
        raise self.err


def test_exception_propagates_unchanged_and_partial_step_is_saved(tmp_path) -> None:
    err = Boom("loss went sideways")
    model = Exploding(err)
    with pytest.raises(Boom) as caught, gprof.profile(logdir=tmp_path, run="crash") as prof:
        good = nn.Linear(4, 4)
        good(torch.randn(2, 4)).sum().backward()
        prof.step()
        model(torch.randn(2, 4))
    assert caught.value is err, "the user's exception object must propagate, not a wrapper"
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert caught.traceback[-1].name == "forward", "the traceback must end where the user raised"

    run = gprof.store.open_run(tmp_path / "crash")
    assert run.steps() == [0, 1]
    assert gprof.load(run.path, step=0).meta.complete
    partial = gprof.load(run.path, step=1)
    assert not partial.meta.complete
    assert "Boom" in partial.meta.error and "loss went sideways" in partial.meta.error
    # the ops before the raise are all there, attributed to the module that ran them
    # (a second model in one session is a second root: its modules are named "Exploding.fc")
    assert [n.op for n in partial.nodes if (n.module or "").endswith("fc")][-1] == "aten.addmm.default"
    assert any(n.op == "aten.relu.default" for n in partial.nodes)


def test_exception_in_backward_hook_propagates(tmp_path) -> None:
    err = ValueError("bad gradient")
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))

    def hook(grad: torch.Tensor) -> torch.Tensor:
        raise err

    model[0].weight.register_hook(hook)
    with pytest.raises(ValueError) as caught, gprof.profile(logdir=tmp_path, run="bw"):
        model(torch.randn(2, 4)).sum().backward()
    assert caught.value is err
    g = gprof.load(tmp_path / "bw")
    assert not g.meta.complete and "bad gradient" in g.meta.error
    assert g.by_phase("backward"), "the backward ops before the failing hook were lost"


def test_keyboard_interrupt_propagates_and_saves(tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt), gprof.profile(logdir=tmp_path, run="ctrlc"):
        torch.ones(4).mul(2)
        raise KeyboardInterrupt
    g = gprof.load(tmp_path / "ctrlc")
    assert not g.meta.complete and "KeyboardInterrupt" in g.meta.error


def test_recording_stops_after_the_exception(tmp_path) -> None:
    with pytest.raises(Boom), gprof.profile(logdir=tmp_path, run="after"):
        torch.ones(4).mul(2)
        raise Boom("x")
    torch.ones(4).mul(3)  # must not be recorded, nor crash
    assert [n.op for n in gprof.load(tmp_path / "after").nodes] == ["aten.ones.default", "aten.mul.Tensor"]


@pytest.mark.slow
def test_report_reads_the_incomplete_step(tmp_path, capsys) -> None:
    """``--json`` through a real ``python -m gprof`` process; the text report in-process (same
    ``gprof.cli.main``), since each interpreter start costs seconds of torch imports."""
    with pytest.raises(Boom), gprof.profile(logdir=tmp_path, run="crash") as prof:
        nn.Linear(4, 4)(torch.randn(2, 4)).sum().backward()
        prof.step()
        Exploding(Boom("late failure"))(torch.randn(2, 4))
    assert main(["report", str(tmp_path / "crash"), "--all-steps"]) == 0
    text = capsys.readouterr().out
    assert "== step 0  rank 0/1  complete" in text
    assert "INCOMPLETE" in text and "late failure" in text
    js = gprof_cli("report", tmp_path / "crash", "--json")
    assert js.returncode == 0, js.stderr
    steps = json.loads(js.stdout)["steps"]
    assert [(s["step"], s["complete"]) for s in steps] == [(0, True), (1, False)]
    assert "Boom: late failure" in steps[1]["error"]
    assert steps[1]["nodes"] > 0 and steps[1]["phases"]["forward"] > 0


class FailingSGD(torch.optim.SGD):
    """Updates, then fails (think: a NaN check inside a custom optimizer)."""

    def step(self, closure: object = None) -> None:
        super().step()
        raise Boom("optimizer check failed")


def test_caught_exception_in_optimizer_step_ends_the_optimizer_phase(tmp_path) -> None:
    """Optimizer post-hooks do not run when step() raises; the ops after it are still not optimizer
    ops (see /tmp/h6_findings.md F8)."""
    model = nn.Linear(4, 4)
    opt = FailingSGD(model.parameters(), lr=0.1)
    with gprof.profile(logdir=tmp_path, run="optfail") as prof:
        model(torch.randn(2, 4)).sum().backward()
        with pytest.raises(Boom):
            opt.step()
        model(torch.randn(2, 4)).sum().backward()
    g = prof.graphs[0]
    assert g.meta.complete, "the exception was caught inside the step: the step is complete"
    fwd_mm = [n for n in g.nodes if n.op == "aten.addmm.default"]
    assert [n.phase for n in fwd_mm] == ["forward", "forward"], [(n.key, n.phase) for n in fwd_mm]
    assert len(g.by_phase("optimizer")) == 2, [n.key for n in g.by_phase("optimizer")]


def _global_state() -> tuple:
    from torch.nn.modules import module as nn_module
    from torch.optim import optimizer as optim_module

    return (
        len(nn_module._global_forward_pre_hooks), len(nn_module._global_forward_hooks),
        len(optim_module._global_optimizer_pre_hooks), len(optim_module._global_optimizer_post_hooks),
        torch._C._len_torch_dispatch_stack(), torch._C._autograd._top_saved_tensors_default_hooks(False),
    )


@pytest.mark.parametrize("fail", [False, True])
def test_nothing_is_left_installed_after_the_block(tmp_path, fail: bool) -> None:
    before = _global_state()
    model = nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(Boom) if fail else contextlib.nullcontext(), gprof.profile(logdir=tmp_path, run="clean") as prof:
        model(torch.randn(2, 4)).sum().backward()
        opt.step()
        prof.step()
        model(torch.randn(2, 4)).sum().backward()
        if fail:
            raise Boom("mid-step")
    assert _global_state() == before, "module/optimizer hooks, dispatch mode or saved-tensor hooks leaked"
