"""Helpers shared by the real-stack tests: reading a run back and comparing two trainings."""
from __future__ import annotations

from collections import Counter
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


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def assert_bit_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    """Same length, dtype, shape and bytes, element by element (losses or parameters)."""
    assert len(a) == len(b) and a, (len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, i
        assert torch.equal(_bits(x), _bits(y)), f"element {i} differs"
