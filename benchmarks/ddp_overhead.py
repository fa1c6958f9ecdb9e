"""Profiler cost on a real 2-rank gloo DDP step, and the cost of the cross-rank analysis.

Inside one ``gprof.profile`` whose schedule alternates unrecorded and recorded steps, both ranks
run the same steps, one torch thread each; rank 0 reports medians of its step times (which
include waiting for rank 1, as a user sees them) and of the build and save in the
``prof.step()`` after a recorded step, then times ``cross_rank_report`` on the run's last step.

    python benchmarks/ddp_overhead.py [--rounds 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import header
from examples import ddp_train


def _model() -> DDP:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512),
                        nn.ReLU(), nn.Linear(512, 10))
    return DDP(net)  # default 25 MB buckets: one bucket after the rebuild


def _bench(logdir: str, rounds: int) -> None:
    import gprof
    from gprof.distributed import cross_rank_report
    from gprof.store import open_run

    torch.set_num_threads(1)
    rank, world = ddp_train.init_gloo(120)
    ddp = _model()
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(rank)
    x, y = torch.randn(64, 256, generator=g), torch.randint(0, 10, (64,), generator=g)

    def one() -> None:
        nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
        opt.zero_grad()

    for _ in range(3):  # warm-up, DDP bucket rebuild
        one()
    plain, profiled, save = [], [], []
    # steps alternate: not recorded (profile open, recorder off) / recorded, as torch.profiler's schedule
    with gprof.profile(logdir=logdir, run="ddp-bench", analyze=False,
                       schedule=gprof.schedule(wait=1, warmup=0, active=1)) as prof:
        for i in range(2 * rounds):
            dist.barrier()
            t0 = time.perf_counter()
            one()
            t1 = time.perf_counter()
            prof.step()
            (profiled if i % 2 else plain).append(t1 - t0)
            if i % 2:
                save.append(time.perf_counter() - t1)
    dist.barrier()
    if rank == 0:
        run = open_run(Path(logdir) / "ddp-bench")
        nodes = gprof.load(run.path, rank=0).meta.node_count
        reports = []
        for _ in range(5):
            t0 = time.perf_counter()
            cross_rank_report(run, step=run.steps()[-1])
            reports.append(time.perf_counter() - t0)
        p, q, s, r = (statistics.median(v) * 1e3 for v in (plain, profiled, save, reports))
        print(header(f"DDP overhead: 2 ranks, gloo, MLP 256-512x3-10, batch 64, Adam; {rounds} rounds"))
        print(f"world size {world}; {nodes} nodes per profiled step on rank 0")
        print(f"unrecorded step (median)       {p:8.2f} ms")
        print(f"recorded step (median)         {q:8.2f} ms   ratio {q / p:.2f}")
        print(f"build + save in prof.step()    {s:8.2f} ms")
        print(f"cross_rank_report, 1 step x 2 ranks (median of 5) {r:8.2f} ms")
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as logdir:
        ddp_train.spawn_local(_bench, 2, (logdir, a.rounds), timeout_s=600)


if __name__ == "__main__":
    main()
