"""Real DistributedDataParallel training on gloo (CPU), every rank profiling into the same run.

Under torchrun (any launcher that sets RANK/WORLD_SIZE/MASTER_ADDR works the same)::

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --logdir runs

or on its own, spawning 2 local ranks with torch.multiprocessing::

    python examples/ddp_train.py --logdir runs

Each rank writes ``runs/ddp/plugins/gprof/step<N>.rank<R>-of-2.sqlite``; rank 0 prints the
report, with the cross-rank section (step time per rank, communication share, straggler,
mismatched collectives). ``--straggle-rank 1`` makes rank 1 sleep inside each step, to see it
named. Small buckets (``bucket_cap_mb``) give several gradient allreduces per backward.
"""
from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

BUCKET_CAP_MB = 0.01


def make(rank: int, steps: int = 4) -> tuple[DDP, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The same initial weights on every rank (DDP broadcasts rank 0's anyway); each rank its own data."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    ddp = DDP(model, bucket_cap_mb=BUCKET_CAP_MB)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(100 + rank)
    batches = [(torch.randn(16, 32, generator=g), torch.randn(16, 4, generator=g)) for _ in range(steps)]
    return ddp, opt, batches


def step(ddp: DDP, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor],
         straggle: float = 0.0) -> torch.Tensor:
    """One step; ``straggle`` seconds of host work (a sleep) between forward and backward."""
    x, y = batch
    loss = nn.functional.mse_loss(ddp(x), y)
    if straggle:
        time.sleep(straggle)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def train(rank: int, steps: int, prof: Any = None, straggle: float = 0.0) -> DDP:
    """Train ``steps`` steps; with ``prof``, mark each step; ``straggle`` seconds of sleep per step."""
    ddp, opt, batches = make(rank, steps)
    for batch in batches:
        step(ddp, opt, batch, straggle)
        if prof is not None:
            prof.step()
    return ddp


def init_gloo(timeout_s: float = 60.0) -> tuple[int, int]:
    """Join the job the environment describes (torchrun's, or :func:`spawn_local`'s)."""
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(rank: int, world: int, port: int, fn: Callable[..., None], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    fn(*args)


def spawn_local(fn: Callable[..., None], nprocs: int, args: tuple = (), timeout_s: float = 120.0) -> None:
    """Run ``fn(*args)`` on ``nprocs`` local ranks with the torchrun environment set, and wait at
    most ``timeout_s``: a rank stuck in a mismatched collective is killed, never waited on forever."""
    ctx = mp.start_processes(_spawned, args=(nprocs, free_port(), fn, args), nprocs=nprocs, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"ranks still running after {timeout_s:.0f} s; killed them")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()


def run_rank(logdir: str, run: str, steps: int, straggle_rank: int, straggle_s: float, report: bool) -> None:
    import gprof
    from gprof.commands.report import print_run_report

    rank, world = init_gloo()
    with gprof.profile(logdir=logdir, run=run) as prof:
        ddp = train(rank, steps, prof, straggle=straggle_s if rank == straggle_rank else 0.0)
    checksum = sum(float(p.detach().sum()) for p in ddp.parameters())
    print(f"rank {rank}/{world}: {steps} steps, parameter checksum {checksum:.6f}", flush=True)
    dist.barrier()  # every rank's files are written before rank 0 reads them
    if rank == 0 and report:
        print_run_report(prof.run_dir, sys.stdout)
        print(f"\nBrowse it:  torch-gprof tui {prof.run_dir}   or   tensorboard --logdir {logdir}")
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Profile DDP training on gloo: under torchrun, or spawning ranks itself.")
    p.add_argument("--logdir", default="runs", help="where runs are written (default: runs)")
    p.add_argument("--run", default="ddp", help="run name, the same on every rank (default: ddp)")
    p.add_argument("--steps", type=int, default=4, help="training steps (default: 4)")
    p.add_argument("--nprocs", type=int, default=2, help="ranks to spawn when not under torchrun (default: 2)")
    p.add_argument("--straggle-rank", type=int, default=-1, help="this rank sleeps in every step")
    p.add_argument("--straggle-ms", type=float, default=200.0, help="how long it sleeps (default: 200)")
    p.add_argument("--no-report", action="store_true", help="do not print the report afterwards")
    a = p.parse_args(argv)
    if a.steps < 1 or a.nprocs < 1:
        p.error("--steps and --nprocs must be at least 1")
    args = (a.logdir, a.run, a.steps, a.straggle_rank, a.straggle_ms / 1000, not a.no_report)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        run_rank(*args)
    else:
        spawn_local(run_rank, a.nprocs, args)


if __name__ == "__main__":
    main()
