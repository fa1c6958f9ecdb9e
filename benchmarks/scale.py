"""Scale: one synthetic step of 1,000,000 ops, recorded by the real recorder and written.

    python benchmarks/scale.py [--ops 1000000] [--modules 1000]

The step is a chain of tiny adds inside ``--modules`` modules (so every node has a module and a
module index has something to find). Prints the extra peak RSS over the baseline before the
step (target < 1 GiB), the time to read one module's nodes back with ``StepReader.module_nodes``
(target <= 100 ms) and the throughput in nodes per second. Run it on its own, as a process: the
peak-RSS figure is this process's kernel counter (VmHWM, restarted just before the step).
"""
from __future__ import annotations

import argparse
import gc
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    from benchmarks import _common as C
except ImportError:  # run as `python benchmarks/scale.py`
    import _common as C

import gprof
from gprof.store import StepReader, open_run


class Adds(nn.Module):
    """``n`` tiny adds: one aten op each, each allocating a new 16-byte storage and freeing the last."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.n):
            x = x + 1
        return x


def _time_chunk_builds(prof: gprof.profile) -> list[int]:
    """Wrap the recorder's hand-over of full chunks so the in-step time splits into recording
    and the chunked build+write that streams a long step to disk."""
    rec = prof.session.recorder
    build, times = rec.build, []

    def timed_build(records: Any) -> Any:
        t = time.perf_counter_ns()
        node = build(records)
        times.append(time.perf_counter_ns() - t)
        return node

    rec.build = timed_build
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=1_000_000, help="ops in the step (default 1,000,000)")
    p.add_argument("--modules", type=int, default=1000, help="modules the ops are spread over (default 1000)")
    p.add_argument("--reads", type=int, default=7, help="module reads to take the median of (default 7)")
    p.add_argument("--keep-in-memory", type=int, default=None,
                   help="gprof.profile(keep_in_memory=N): node objects kept for analyses (default: gprof's)")
    args = p.parse_args(argv)
    if args.ops < args.modules or args.modules < 1:
        p.error("--ops must be at least --modules, and --modules at least 1")
    C.single_thread()
    print(C.header("scale.py: one step of many ops, recorded and written"))
    per = args.ops // args.modules
    model = nn.Sequential(*(Adds(per) for _ in range(args.modules)))
    x = torch.zeros(4)
    with tempfile.TemporaryDirectory(prefix="gprof-scale-") as d:
        gc.collect()
        base_rss, _ = C.rss_bytes()
        exact_peak = C.reset_peak_rss()
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            kw = {} if args.keep_in_memory is None else {"keep_in_memory": args.keep_in_memory}
            with gprof.profile(logdir=d, run="scale", **kw) as prof:
                chunk_build_ns = _time_chunk_builds(prof)
                model(x)
                t1 = time.perf_counter()
                prof.step()
                t2 = time.perf_counter()
        _, peak_rss = C.rss_bytes()
        run = open_run(Path(d) / "scale")
        path = run.file(0, 0).path
        with StepReader(path) as r:
            nodes = r.count()
            agg = r.meta.aggregate_only
        target = f"{len(model) // 2}"
        read_ms = []
        for _ in range(args.reads):  # a fresh reader each time, as a view opening the file would
            t = time.perf_counter()
            with StepReader(path) as r:
                got = r.module_nodes(target)
            read_ms.append((time.perf_counter() - t) * 1e3)
        size_mb = path.stat().st_size / 2**20
    record_s, write_s = t1 - t0, t2 - t1
    extra = peak_rss - base_rss
    print(f"   ops requested {args.ops:,} in {args.modules} modules; nodes stored {nodes:,}; aggregate-only {agg}; "
          f"keep_in_memory {prof.session.options.keep_in_memory:,}")
    built_s = sum(chunk_build_ns) / 1e9
    print(f"   record (in-step)        {record_s:8.2f} s   {nodes / record_s:12,.0f} nodes/s")
    print(f"     of which chunk builds {built_s:8.2f} s in {len(chunk_build_ns)} chunks (streamed to the file "
          f"during the step); recording alone {nodes / max(record_s - built_s, 1e-9):,.0f} nodes/s")
    print(f"   build+write (prof.step) {write_s:8.2f} s   {nodes / write_s:12,.0f} nodes/s")
    print(f"   end to end              {record_s + write_s:8.2f} s   {nodes / (record_s + write_s):12,.0f} nodes/s")
    print(f"   step file {size_mb:.1f} MiB ({size_mb * 2**20 / max(nodes, 1):.0f} B/node)")
    note = "" if exact_peak else " (peak counter could not be reset: peak since process start)"
    print(f"   RSS baseline {base_rss / 2**20:.0f} MiB, peak {peak_rss / 2**20:.0f} MiB, "
          f"extra {extra / 2**20:.0f} MiB{note} (target < 1024 MiB): {'MET' if extra < 2**30 else 'NOT MET'}")
    med = C.median(read_ms)
    print(f"   module_nodes({target!r}) -> {len(got):,} nodes: first {read_ms[0]:.1f} ms, median {med:.1f} ms "
          f"of {args.reads} (target <= 100 ms): {'MET' if med <= 100 else 'NOT MET'}")
    for w in caught:
        if str(w.message).startswith("torch-gprof"):
            print(f"   warning during the step: {str(w.message).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
