"""The pre-step heap is frozen only while a step is recorded, and a user's own freeze is kept.

A frozen heap is why collections during a recorded step stay cheap (benchmarks/RESULTS.md); these
tests check it never outlives the step, not even a step that raises, and that garbage cycles made
before the step are still collected after it.
"""
from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import torch

import gprof


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _step(model: torch.nn.Module) -> None:
    model(torch.ones(2, 4)).sum().backward()


def test_heap_is_frozen_during_a_recorded_step_only(tmp_path: Any) -> None:
    model = torch.nn.Linear(4, 4)
    seen: list[int] = []
    model.register_forward_hook(lambda *_: seen.append(gc.get_freeze_count()))
    garbage = _Cycle()
    ref = weakref.ref(garbage)
    del garbage  # a cycle: only the collector frees it
    with gprof.profile(logdir=tmp_path, run="r", analyze=False) as prof:
        _step(model)
        prof.step()
        _step(model)
    assert seen and all(n > 0 for n in seen), "the heap should be frozen while a step is recorded"
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref() is None, "a garbage cycle from before the step must be collectable after it"


def test_heap_is_unfrozen_when_the_step_raises(tmp_path: Any) -> None:
    model = torch.nn.Linear(4, 4)
    with pytest.raises(ZeroDivisionError), gprof.profile(logdir=tmp_path, run="r", analyze=False):
        _step(model)
        raise ZeroDivisionError("inside the recorded step")
    assert gc.get_freeze_count() == 0


def test_a_users_own_freeze_is_kept(tmp_path: Any) -> None:
    gc.freeze()
    try:
        with gprof.profile(logdir=tmp_path, run="r", analyze=False) as prof:
            _step(torch.nn.Linear(4, 4))
            prof.step()
        # frozen objects freed by refcount leave the count, so only "still frozen" is stable
        assert gc.get_freeze_count() > 0, "the user's frozen heap must stay frozen"
    finally:
        gc.unfreeze()
