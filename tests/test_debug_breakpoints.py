"""Breakpoints as pdb users expect them, without a UI (no client: hits are logged, never waited
on): a condition that raises is reported once and never pauses, a breakpoint that matches nothing
in a whole step is flagged, once and ignore counts, module breakpoints fire on entry, and
``absmax`` looks at finite values only."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import gprof
from gprof.debug import DebugSession
from gprof.debug.tensors import absmax


def _train(tmp_path: Path, breaks: list[str], steps: int = 2) -> DebugSession:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("encoder", nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    session = DebugSession(breaks)
    with gprof.profile(logdir=tmp_path, run="bp", step_boundary="optimizer") as prof:
        session.observe(prof)
        for _ in range(steps):
            model(torch.ones(2, 4)).sum().backward()
            opt.step()
            opt.zero_grad()
    session.close()
    return session


def test_raising_condition_and_unknown_targets_are_flagged(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    s = _train(tmp_path, ["@encodr.0", "aten.cholesky_inverse", "if out.bool().neg().any()", "@encoder"])
    typo, never, raising, good = s.debugger.breakpoints
    assert typo.warning is not None and "no module 'encodr.0' ran" in typo.warning and "'encoder.0'" in typo.warning
    assert never.warning is not None and "op 'aten.cholesky_inverse' did not run" in never.warning
    raised = ("condition raised RuntimeError", "condition raised NotImplementedError")  # (torch 2.14: the latter)
    assert raising.error is not None and raising.error.startswith(raised) and raising.hits == 0
    assert good.warning is None and good.error is None
    err = capfd.readouterr().err
    assert err.count("condition raised") == 1 and err.count("no module 'encodr.0'") == 1


def test_module_breakpoints_fire_on_entry_and_once_and_ignore_count(tmp_path: Path) -> None:
    s = _train(tmp_path, ["@encoder:forward", "ignore 1 @encoder.2:forward", "once @encoder.0:forward"])
    entry, ignored = s.debugger.breakpoints  # the one-shot (3) was deleted by its hit
    assert entry.hits == 2  # once per step, not once per op of the module
    assert ignored.hits == 2 and ignored.ignore == 0  # the first hit was let through
    assert [b.id for b in s.debugger.breakpoints] == [1, 2]


def test_absmax_ignores_non_finite_values() -> None:
    assert absmax(torch.tensor([float("-inf"), -3.0, float("nan"), 2.0])) == 3.0
    assert absmax(torch.tensor([float("inf")])) == 0.0


def test_absmax_never_looks_at_uninitialized_memory(tmp_path: Path) -> None:
    """``torch.empty``'s garbage is often above 1e30: ``absmax > 1e30`` paused a plain script at its
    first ``empty`` (and, awaiting a UI under ``torch-gprof debug``, hung it)."""
    session = DebugSession(["aten.empty.memory_format if absmax >= 0", "aten.zeros.default if absmax >= 0"])
    with gprof.profile(logdir=tmp_path, run="empty") as prof:
        session.observe(prof)
        torch.empty(64).fill_(1.0) + torch.zeros(64)
        prof.step()
    session.close()
    on_empty, on_zeros = session.debugger.breakpoints
    assert on_zeros.hits == 1  # absmax 0 >= 0: the same condition hits an initialized output
    assert on_empty.hits == 0 and on_empty.warning is None  # it ran and matched; its values are no values
