"""Nodes on a time axis, per thread (and per device stream when recorded), with level of detail.

A million-node step cannot go to the browser node by node, so a window holding more than ``max``
nodes is answered as buckets: per lane and time bucket, the node count, busy time, the dominant
phase and the longest node (to click). Small windows are answered node by node. The step's start
times, durations, lanes and phases are read once into arrays sorted by start (:func:`timeline_arrays`,
one pass over the file, which views cache); each window is then a binary search and a few
``bincount`` calls, milliseconds on a million nodes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gprof.graph.model import PHASES
from gprof.store.step_file import StepReader

NODE_COLUMNS = ["idx", "start_ns", "dur_ns", "lane", "phase", "op"]
BUCKET_COLUMNS = ["start_ns", "width_ns", "lane", "nodes", "busy_ns", "phase", "idx"]


def timeline_arrays(r: StepReader) -> dict[str, Any]:
    """idx, start (ns since the step's first node), dur, lane and phase id of every node, by start."""
    stream = ("json_extract(attrs, '$.stream')" if any(d != "cpu" for d in r.meta.devices)
              and r.sql("SELECT 1 FROM nodes WHERE attrs LIKE '%\"stream\"%' LIMIT 1") else "NULL")
    rows = r.sql(f"SELECT idx, start_ns, COALESCE(dur_ns, 0), thread, {stream}, phase FROM nodes ORDER BY start_ns, idx")
    lanes: dict[str, int] = {}
    phase_id = {p: i for i, p in enumerate(PHASES)}
    idx = np.fromiter((x[0] for x in rows), dtype=np.int64, count=len(rows))
    start = np.fromiter((x[1] or 0 for x in rows), dtype=np.int64, count=len(rows))
    dur = np.fromiter((x[2] for x in rows), dtype=np.int64, count=len(rows))
    lane = np.fromiter((lanes.setdefault(f"stream {x[4]}" if x[4] is not None else f"thread {x[3] or 0}", len(lanes))
                        for x in rows), dtype=np.int64, count=len(rows))
    phase = np.fromiter((phase_id.get(x[5], 0) for x in rows), dtype=np.int64, count=len(rows))
    base = int(start[0]) if len(start) else 0
    return {"idx": idx, "start": start - base, "dur": dur, "lane": lane, "phase": phase, "lanes": list(lanes),
            "span_ns": int((start - base + dur).max()) if len(start) else 0}


def timeline(r: StepReader, arrays: dict[str, Any], from_ns: int | None = None, to_ns: int | None = None,
             max_items: int = 5000) -> dict[str, Any]:
    """Nodes starting in [from_ns, to_ns) of step time: node by node when at most ``max_items``
    (columns :data:`NODE_COLUMNS`), else per lane in at most ``max_items`` time buckets
    (:data:`BUCKET_COLUMNS`; phase is the bucket's busiest, idx its longest node)."""
    a = from_ns or 0
    b = arrays["span_ns"] + 1 if to_ns is None else to_ns
    lo, hi = np.searchsorted(arrays["start"], [a, b])
    head = {"from_ns": a, "to_ns": b, "span_ns": arrays["span_ns"], "count": int(hi - lo), "lanes": arrays["lanes"]}
    sel = slice(lo, hi)
    if hi - lo <= max_items:
        idx = arrays["idx"][sel].tolist()
        ops = dict(r.sql(f"SELECT idx, op FROM nodes WHERE idx IN ({','.join(map(str, idx))})")) if idx else {}
        items = [[i, s, d, ln, PHASES[p], ops.get(i)] for i, s, d, ln, p in zip(
            idx, arrays["start"][sel].tolist(), arrays["dur"][sel].tolist(), arrays["lane"][sel].tolist(),
            arrays["phase"][sel].tolist())]
        return {**head, "mode": "nodes", "columns": NODE_COLUMNS, "items": items}
    width = max(1, -(-(b - a) // max_items))
    nl, nph = max(1, len(arrays["lanes"])), len(PHASES)
    key = (arrays["start"][sel] - a) // width * nl + arrays["lane"][sel]
    order = np.argsort(key, kind="stable")  # radix sort: the keys are nearly sorted already
    key, dur, phase, idx = key[order], arrays["dur"][sel][order], arrays["phase"][sel][order], arrays["idx"][sel][order]
    cuts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    uniq = key[cuts]
    group = np.repeat(np.arange(len(cuts)), np.diff(np.r_[cuts, len(key)]))
    count = np.diff(np.r_[cuts, len(key)])
    busy = np.add.reduceat(dur, cuts)
    by_phase = np.bincount(group * nph + phase, dur, minlength=len(cuts) * nph).reshape(-1, nph)
    at_max = np.flatnonzero(dur == np.maximum.reduceat(dur, cuts)[group])
    longest = idx[at_max[np.r_[True, group[at_max][1:] != group[at_max][:-1]]]]  # first longest per bucket
    items = [[a + int(k // nl) * width, width, int(k % nl), int(c), int(bz), PHASES[int(ph)], int(i)]
             for k, c, bz, ph, i in zip(uniq.tolist(), count.tolist(), busy.tolist(), by_phase.argmax(1).tolist(),
                                        longest.tolist())]
    return {**head, "mode": "buckets", "bucket_ns": width, "columns": BUCKET_COLUMNS, "items": items}
