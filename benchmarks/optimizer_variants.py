"""Optimizer step time and aten op count per variant (for-loop, foreach, fused) on this machine.

Gives the numbers gprof/analyses/optimizer.py prices its advice with: the ops a fused step runs per
optimizer type, and what one dispatched op costs beyond its arithmetic ((t_loop - t_fused) / (ops_loop -
ops_fused)). Run: ``python benchmarks/optimizer_variants.py``; results go in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func.namespace != "profiler":
            self.n += 1
        return func(*args, **(kwargs or {}))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(64, 64) for _ in range(12)])  # 24 parameters, small: dispatch-bound


def measure(cls: type[torch.optim.Optimizer], variant: str, reps: int = 200) -> tuple[int, float]:
    """(aten ops per steady-state step, median step time in us)."""
    model = _model()
    kw = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[variant]
    opt = cls(model.parameters(), lr=1e-3, **kw)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    for _ in range(3):
        opt.step()
    with _Count() as c:
        opt.step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        opt.step()
        times.append(time.perf_counter_ns() - t0)
    return c.n, statistics.median(times) / 1000


def main() -> None:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 12 x Linear(64, 64) (24 parameters), 1 thread")
    print(f"{'optimizer':<8} {'variant':<8} {'ops':>5} {'step us':>9}")
    for cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
        rows = {}
        for variant in ("loop", "foreach", "fused"):
            try:
                rows[variant] = measure(cls, variant)
            except (RuntimeError, TypeError) as e:  # a variant this optimizer or device lacks
                print(f"{cls.__name__:<8} {variant:<8} n/a ({e})")
                continue
            print(f"{cls.__name__:<8} {variant:<8} {rows[variant][0]:>5} {rows[variant][1]:>9.1f}")
        if "loop" in rows and "fused" in rows:
            (n0, t0), (n1, t1) = rows["loop"], rows["fused"]
            print(f"{cls.__name__:<8} per-op cost removed by fusing: {(t0 - t1) / max(1, n0 - n1):.2f} us")


if __name__ == "__main__":
    main()
