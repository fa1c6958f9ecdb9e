"""Shared fixtures for the capture-core acceptance tests (and anyone else who wants them).

Stable API (others may rely on it):

- ``EXAMPLE_NAMES``: every single-process ``examples/*.py``: it defines ``make(steps=...)`` and
  ``step()``, and ``make`` needs no other argument (the DDP example's ``make(rank)`` needs a
  process group, so it is left to the distributed tests).
- ``load_example(name)``: that example's module.
- ``run_example(name, steps, prof=None)`` -> :class:`ExampleTrace`: one seeded training run, with a
  snapshot of every gradient just before ``optimizer.step()``; ``prof`` (a ``gprof.profile``) gets
  ``prof.step()`` after each training step.
- ``recorded_examples`` (session fixture): ``{name: RecordedExample}``, each example recorded once
  with ``gprof.profile`` for ``RECORDED_STEPS`` steps into a session temp logdir (run name = example
  name). Treat it as read-only.
- ``bitwise_equal(a, b)``: same dtype, shape and bytes (NaNs compare equal when their bits do).
- ``Block``, ``Net``, ``seeded_net()``: a tiny seeded model (embed -> block.{fc1,act,fc2} with a
  residual -> head) and a 4x8 input, for tests that need named submodules but no example.
- ``gprof_cli(*args)``: run ``python -m gprof ARGS`` as a subprocess; returns CompletedProcess.
"""
from __future__ import annotations

import os

# tests/stacks: nothing is downloaded; the Hugging Face hub is kept offline so a library reaching for it
# fails fast instead of waiting on a network this machine lacks.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import importlib
import inspect
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes

import gprof
from gprof.graph.model import StepGraph

ROOT = Path(__file__).resolve().parent.parent
# the examples are a package at the repo root, which pytest does not put on sys.path by itself
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# One intra-op thread: the CI machine has 2 cores shared with tensorboard/chromium processes, and
# oversubscribed threads made each example step 10x slower. Results stay deterministic either way.
torch.set_num_threads(1)

#: steps each example is recorded for: step 0 creates the optimizer state, step 1+ are steady.
RECORDED_STEPS = 3


def _needs_only_steps(make: Any) -> bool:
    params = inspect.signature(make).parameters
    return "steps" in params and all(
        p.default is not p.empty for name, p in params.items() if name != "steps")


def _example_names() -> list[str]:
    names = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        if path.name.startswith("_"):
            continue
        mod = importlib.import_module(f"examples.{path.stem}")
        make, step = getattr(mod, "make", None), getattr(mod, "step", None)
        if callable(make) and callable(step) and _needs_only_steps(make):
            names.append(path.stem)
    return names


EXAMPLE_NAMES = _example_names()


def load_example(name: str) -> ModuleType:
    return importlib.import_module(f"examples.{name}")


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.is_quantized:
        t = t.int_repr()
    t = t.resolve_conj().resolve_neg()
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.view(_INT_OF_SIZE[t.element_size()])


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality; unlike ``torch.equal`` a NaN equals the same NaN (and -0.0 != 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape or a.device != b.device:
        return False
    return torch.equal(_bits(a), _bits(b))


@dataclass
class ExampleTrace:
    """Everything a transparency check compares, captured from one training run."""

    losses: list[torch.Tensor] = field(default_factory=list)
    #: per step, the gradients as optimizer.step() saw them (parameter name -> grad or None)
    grads: list[dict[str, torch.Tensor | None]] = field(default_factory=list)
    #: parameters after the last step
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    model: Any = None
    optimizer: Any = None


def run_example(name: str, steps: int = RECORDED_STEPS, prof: Any = None) -> ExampleTrace:
    """Seeded training run of an example. Gradients are copied in an optimizer pre-hook with
    every dispatch mode disabled, so the copy is neither recorded nor changes what is."""
    ex = load_example(name)
    torch.manual_seed(0)
    model, opt, batches = ex.make(steps=steps)
    trace = ExampleTrace(model=model, optimizer=opt)
    named = list(model.named_parameters())

    def snapshot_grads(_opt: Any, _args: Any, _kwargs: Any) -> None:
        with _disable_current_modes(), torch.no_grad():
            trace.grads.append({n: None if p.grad is None else p.grad.clone() for n, p in named})

    handle = opt.register_step_pre_hook(snapshot_grads)
    try:
        for batch in batches:
            loss = ex.step(model, opt, batch)
            with _disable_current_modes():
                trace.losses.append(loss.detach().clone())
            if prof is not None:
                prof.step()
    finally:
        handle.remove()
    with _disable_current_modes():
        trace.params = {n: p.detach().clone() for n, p in named}
    return trace


class Block(nn.Module):
    """fc1 -> GELU -> fc2 with a residual: a custom forward (not a Sequential)."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, 2 * d)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(x)))


class Net(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.block = Block(d)
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(torch.relu(self.embed(x))))


def seeded_net() -> tuple[Net, torch.Tensor]:
    torch.manual_seed(0)
    return Net(), torch.randn(4, 8)


@dataclass
class RecordedExample:
    name: str
    logdir: Path
    run_dir: Path
    #: the saved steps' graphs as capture produced them (prof.graphs), in step order
    graphs: list[StepGraph]
    trace: ExampleTrace


@pytest.fixture(scope="session")
def recorded_examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RecordedExample]:
    logdir = tmp_path_factory.mktemp("gprof-examples")
    out = {}
    for name in EXAMPLE_NAMES:
        with gprof.profile(logdir=logdir, run=name) as prof:
            trace = run_example(name, RECORDED_STEPS, prof)
        out[name] = RecordedExample(name, logdir, prof.run_dir, list(prof.graphs), trace)
    return out


def gprof_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gprof", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
