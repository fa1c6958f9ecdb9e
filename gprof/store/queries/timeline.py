"""Nodes on a time axis, per thread (and per device stream when recorded), with level of detail.

A million-node step cannot go to the browser node by node, so a window holding more than ``max``
nodes is answered as buckets: per lane and time bucket, the node count, busy time, the dominant
phase and the longest node (to click). Small windows are answered node by node. Both are one
indexed-free scan of ``start_ns`` in SQLite; no node is decoded in Python.
"""
from __future__ import annotations

from typing import Any

from gprof.store.step_file import StepReader


def _lane(thread: int | None, stream: Any) -> str:
    return f"stream {stream}" if stream is not None else f"thread {thread or 0}"


def timeline(r: StepReader, from_ns: int | None = None, to_ns: int | None = None, max_items: int = 5000,
             buckets: int = 1000) -> dict[str, Any]:
    """Nodes or buckets in [from_ns, to_ns) of step time (ns since the step's first node).

    Node items: [idx, start_ns, dur_ns, lane index, phase, op]; bucket items: [start_ns, width_ns,
    lane index, count, busy_ns, phase, idx of the longest node]."""
    lo, hi = r.sql("SELECT MIN(start_ns), MAX(start_ns + COALESCE(dur_ns, 0)) FROM nodes")[0]
    if lo is None:
        return {"mode": "nodes", "lanes": [], "items": [], "from_ns": 0, "to_ns": 0, "span_ns": 0}
    a = lo + (from_ns or 0)
    b = lo + to_ns if to_ns is not None else hi + 1
    stream = "json_extract(attrs, '$.stream')" if _has_streams(r) else "NULL"
    count = r.sql("SELECT COUNT(*) FROM nodes WHERE start_ns >= ? AND start_ns < ?", (a, b))[0][0]
    lanes: dict[str, int] = {}
    head = {"from_ns": a - lo, "to_ns": b - lo, "span_ns": hi - lo, "count": count}
    if count <= max_items:
        items = []
        for idx, start, dur, thread, st, phase, op in r.sql(
                f"SELECT idx, start_ns, dur_ns, thread, {stream}, phase, op FROM nodes "
                "WHERE start_ns >= ? AND start_ns < ? ORDER BY start_ns", (a, b)):
            lane = lanes.setdefault(_lane(thread, st), len(lanes))
            items.append([idx, start - lo, dur or 0, lane, phase, op])
        return {**head, "mode": "nodes", "lanes": list(lanes), "items": items}
    width = max(1, -(-(b - a) // max(1, min(buckets, max_items))))
    rows = r.sql(
        f"SELECT (start_ns - ?) / ? AS bk, thread, {stream} AS st, phase, COUNT(*), SUM(dur_ns), MAX(dur_ns), idx "
        "FROM nodes WHERE start_ns >= ? AND start_ns < ? GROUP BY bk, thread, st, phase", (a, width, a, b))
    best: dict[tuple, list[Any]] = {}
    for bk, thread, st, phase, n, busy, longest, idx in rows:  # one row per phase: keep the busiest
        lane = lanes.setdefault(_lane(thread, st), len(lanes))
        cur = best.get((bk, lane))
        if cur is None:
            best[(bk, lane)] = [a - lo + bk * width, width, lane, n, busy or 0, phase, idx, busy or 0, longest]
        else:
            cur[3] += n
            cur[4] += busy or 0
            if (busy or 0) > cur[7]:
                cur[5], cur[7] = phase, busy or 0
            if (longest or 0) > (cur[8] or 0):
                cur[6], cur[8] = idx, longest
    items = [v[:7] for _, v in sorted(best.items())]
    return {**head, "mode": "buckets", "bucket_ns": width, "lanes": list(lanes), "items": items}


def _has_streams(r: StepReader) -> bool:
    """Whether any node carries a device stream (GPU steps); CPU steps skip the JSON extraction."""
    return any(d != "cpu" for d in r.meta.devices) and bool(
        r.sql("SELECT 1 FROM nodes WHERE attrs LIKE '%\"stream\"%' LIMIT 1"))
