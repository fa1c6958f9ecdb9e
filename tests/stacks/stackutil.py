"""Helpers shared by the real-stack tests: reading a run back and comparing two trainings."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

import gprof
from gprof.graph.model import StepGraph
from gprof.store import open_run


def stored_steps(run_dir: Path) -> dict[int, StepGraph]:
    """Every step file of the run, read back the way a viewer reads it."""
    return {s: gprof.load(run_dir, step=s) for s in open_run(run_dir).steps()}


def phases(graph: StepGraph) -> Counter[str]:
    return Counter(n.phase for n in graph.nodes)


def train(loss_of_next_batch: Callable[[], torch.Tensor], opt: torch.optim.Optimizer, steps: int,
          prof: gprof.profile | None) -> list[torch.Tensor]:
    """The plain loop every stack test compares with and without the profiler; returns the losses."""
    losses = []
    for _ in range(steps):
        loss = loss_of_next_batch()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.detach().clone())
        if prof is not None:
            prof.step()
    return losses


def assert_framework_steps(run_dir: Path, steps: int) -> dict[int, StepGraph]:
    """A framework integration stored one complete step per optimizer step, numbered by the framework from
    0 (no trailing partial step), each with forward, backward and optimizer ops, and readers open the last."""
    stored = stored_steps(run_dir)
    assert sorted(stored) == list(range(steps))
    for num, graph in stored.items():
        counts = phases(graph)
        assert graph.meta.complete and graph.meta.step == num
        assert counts["forward"] > 0 and counts["backward"] > 0 and counts["optimizer"] > 0, (num, counts)
    assert gprof.load(run_dir).meta.step == steps - 1
    return stored


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def assert_bit_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    """Same length, dtype, shape and bytes, element by element (losses or parameters)."""
    assert len(a) == len(b) and a, (len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, i
        assert torch.equal(_bits(x), _bits(y)), f"element {i} differs"
