"""Shared driver for the examples: a seeded model, a few Adam steps, profiled or not.

Every example exposes ``make()`` -> (model, optimizer, batches) and ``step(model, opt, batch)``
-> loss, so the tests can run it with and without the profiler and compare bit for bit.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from typing import Any

import torch


def step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: Any) -> torch.Tensor:
    """The step every example trains with: the model returns its loss (like ``model(batch).loss``)."""
    loss = model(*batch)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def train(make: Callable[[], tuple[torch.nn.Module, torch.optim.Optimizer, list[Any]]],
          step: Callable[[torch.nn.Module, torch.optim.Optimizer, Any], torch.Tensor],
          profile: Any = None) -> list[float]:
    """Run every batch once; with ``profile`` (a gprof.profile), call prof.step() after each."""
    model, opt, batches = make()
    losses = []
    for batch in batches:
        loss = step(model, opt, batch)
        losses.append(loss.item())
        if profile is not None:
            profile.step()
    return losses


def _command(script: str, module: str) -> str:
    """How to run ``script`` from this shell: by name when it is on PATH, else through this Python."""
    return script if shutil.which(script) else f"{sys.executable} -m {module}"


def main(name: str, make: Callable, step: Callable, argv: list[str] | None = None) -> None:
    import gprof
    from gprof.commands.report import print_run_report

    p = argparse.ArgumentParser(description=f"Profile a few training steps of the {name} example.")
    p.add_argument("--logdir", default="runs", help="where runs are written (default: runs)")
    p.add_argument("--run", default=name, help=f"run name (default: {name})")
    p.add_argument("--no-report", action="store_true", help="do not print the report afterwards")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    with gprof.profile(logdir=args.logdir, run=args.run) as prof:
        losses = train(make, step, profile=prof)
    print(f"{name}: {len(losses)} steps, final loss {losses[-1]:.4f}; run written to {prof.run_dir}")
    if not args.no_report:
        print_run_report(prof.run_dir, sys.stdout)
        gprof_cmd, tb_cmd = _command("torch-gprof", "gprof"), _command("tensorboard", "tensorboard.main")
        print(f"\nBrowse it:  {gprof_cmd} tui {prof.run_dir}   or   {tb_cmd} --logdir {args.logdir}  (the gprof tab)")
