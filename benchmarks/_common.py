"""Shared pieces of the capture benchmarks: the models, a pass-through mode, interleaved timing.

Every benchmark compares configurations measured in one process, one thread, interleaved
round by round, and reports medians: on a shared 2-core machine, a number from another run (or
taken while a neighbour was busy) is not comparable (docs/recording-facts.md).
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from anywhere: the examples import as a package
    sys.path.insert(0, str(ROOT))

#: the examples' training step (the model returns its loss): every benchmark times this one

Make = Callable[[], tuple[nn.Module, torch.optim.Optimizer, list[Any]]]
Step = Callable[[nn.Module, torch.optim.Optimizer, Any], torch.Tensor]


def header(title: str) -> str:
    """Machine, date and versions: what RESULTS.md needs next to every figure."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"# {title}\n# {time.strftime('%Y-%m-%d %H:%M %Z')}; torch {torch.__version__}; "
            f"Python {platform.python_version()}; {cpu}, {os.cpu_count()} cores; torch threads "
            f"{torch.get_num_threads()}; load average {load:.2f} at start")


class PassThrough(TorchDispatchMode):
    """The floor of any Python dispatch mode: call the op, nothing else."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        return func(*args, **(kwargs or {}))


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func.namespace != "profiler":  # record_function markers are not ops (gprof skips them too)
            self.n += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(model: nn.Module, opt: torch.optim.Optimizer, batch: Any, step: Step) -> int:
    """Aten ops in one steady-state step (call after a warm-up step so the optimizer state exists)."""
    with OpCounter() as c:
        step(model, opt, batch)
    return c.n




# ----------------------------------------------------------------------------------- models
class _Block(nn.Module):
    """A GPT-2 block: pre-LN causal self-attention and a GELU MLP, both residual, with GPT-2's dropouts."""

    def __init__(self, width: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.heads = heads
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.ln_1 = nn.LayerNorm(width)
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.c_fc = nn.Linear(width, 4 * width)
        self.mlp_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / (c // self.heads) ** 0.5)
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1), float("-inf")).softmax(-1)
        y = (self.attn_dropout(att) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.resid_dropout(self.c_proj(y))
        return x + self.resid_dropout(self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x)))))


class TinyGPT(nn.Module):
    """GPT-2's shape at toy size: token+position embeddings, ``layers`` blocks, tied LM head."""

    def __init__(self, vocab: int = 512, width: int = 128, layers: int = 2, heads: int = 4, ctx: int = 64) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(ctx, width)
        self.drop = nn.Dropout(0.1)
        self.h = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def make_gpt(steps: int = 4, batch: int = 4, seq: int = 64, width: int = 128, layers: int = 2,
             vocab: int = 512, heads: int = 4) -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
    torch.manual_seed(0)
    model = TinyGPT(vocab, width, layers, heads, seq)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, vocab, (batch, seq), generator=g), torch.randint(0, vocab, (batch, seq), generator=g))
               for _ in range(steps)]
    return model, opt, batches


class _MSEHead(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(self.body(x), y)


def make_tiny(steps: int = 4, layers: int = 20, width: int = 32, batch: int = 4
              ) -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
    """The tiny-op stress model: every op is a few microseconds, so the per-op cost shows."""
    torch.manual_seed(0)
    model = _MSEHead(nn.Sequential(*(m for _ in range(layers) for m in (nn.Linear(width, width), nn.ReLU()))))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(batch, width, generator=g), torch.randn(batch, width, generator=g)) for _ in range(steps)]
    return model, opt, batches


def make_transformer() -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
    from examples import transformer

    return transformer.make()


def _example(name: str) -> Make:
    def make() -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
        import importlib

        return importlib.import_module(f"examples.{name}").make()
    return make


MODELS: dict[str, Make] = {"transformer": make_transformer, "gpt2": make_gpt, "tiny": make_tiny,
                           "mlp": _example("mlp"), "cnn": _example("cnn")}


def model_names(parser: Any, text: str) -> list[str]:
    """``--models a,b`` -> names, or a parser error that lists the choices."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    return names


# ----------------------------------------------------------------------------------- timing
def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_ms(ns: float) -> str:
    return f"{ns / 1e6:8.2f} ms"


class Samples:
    """Per-configuration timing samples in ns, collected round by round."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, list[int]]] = {}

    def add(self, config: str, what: str, ns: int) -> None:
        self.data.setdefault(config, {}).setdefault(what, []).append(ns)

    def med(self, config: str, what: str) -> float:
        return median(self.data.get(config, {}).get(what, []))

    def count(self, config: str, what: str) -> int:
        return len(self.data.get(config, {}).get(what, []))


def timed(fn: Callable[[], Any]) -> tuple[int, Any]:
    t0 = time.perf_counter_ns()
    out = fn()
    return time.perf_counter_ns() - t0, out


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C-level stderr (Kineto prints a line per profiler start/stop) so results stay readable."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def rss_bytes() -> tuple[int, int]:
    """(current RSS, peak RSS since the last :func:`reset_peak_rss`) of this process, from /proc."""
    cur = peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cur, peak


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM) at the current RSS; False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def single_thread() -> None:
    torch.set_num_threads(1)
