"""A step as a Chrome trace (JSON), which Perfetto UI and chrome://tracing open.

One complete ("X") event per node on its thread's track, categorised by phase, with the node's key,
module, shapes, memory and FLOPs as arguments, plus a "live bytes" counter track. The file is
streamed node by node, so a million-node step never sits in memory as one JSON document.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

from gprof.store import StepReader


def _shapes(ts: tuple) -> str:
    return ", ".join(t.short() for t in ts)


def write_trace(reader: StepReader, out: IO[str]) -> int:
    """Write the trace JSON to ``out``; returns the number of node events."""
    pid = reader.meta.rank
    out.write('{"displayTimeUnit":"ns","otherData":')
    out.write(json.dumps({"producer": "torch-gprof", "run": reader.meta.run, "step": reader.meta.step,
                          "rank": reader.meta.rank, "world_size": reader.meta.world_size}))
    out.write(',"traceEvents":[\n')
    out.write(json.dumps({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": f"rank {pid}"}}))
    t0: int | None = None
    threads: set[int] = set()
    count = 0
    for n in reader.iter_nodes():
        t0 = n.start_ns if t0 is None else t0
        ts = (n.start_ns - t0) / 1000
        if n.thread not in threads:
            threads.add(n.thread)
            out.write(",\n" + json.dumps({"ph": "M", "name": "thread_name", "pid": pid, "tid": n.thread,
                                          "args": {"name": "main" if n.thread == 0 else f"thread {n.thread}"}}))
        args = {"idx": n.idx, "key": n.key, "module": n.module, "inputs": _shapes(n.inputs),
                "outputs": _shapes(n.outputs), "alloc_bytes": n.alloc_bytes, "flops": n.flops}
        if n.source:
            args["source"] = n.source
        if n.device_ns is not None:
            args["device_ns"] = n.device_ns
        out.write(",\n" + json.dumps({"ph": "X", "name": n.op_short, "cat": n.phase, "ts": ts,
                                      "dur": n.dur_ns / 1000, "pid": pid, "tid": n.thread, "args": args}))
        out.write(",\n" + json.dumps({"ph": "C", "name": "live bytes", "ts": ts, "pid": pid,
                                      "args": {"bytes": n.live_bytes}}))
        count += 1
    out.write("\n]}\n")
    return count


def export_trace(reader: StepReader, path: str | os.PathLike[str]) -> Path:
    """Write the trace to ``path`` through a temp file, so a reader never sees half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        write_trace(reader, f)
    os.replace(tmp, path)
    return path
