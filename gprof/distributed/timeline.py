"""Where one rank's step time went: compute, communication (launch plus exposed wait) and the
rest, and how much *busy* (non-communication) time each node's stretch of the step took.

A rank that waits for a slower peer does so inside a collective, or with no op running between a
collective's launch and the point it must be complete: the next op for a blocking call
(``async_op`` false, as ``dist.all_reduce``), else the first later op that touches the
collective's tensors (DDP copying a reduced bucket back into the grads), or the backend's
completion callback (``attrs["end_ns"]``) when that came earlier. That time is communication, not
work, so subtracting it leaves the time each rank spent on its own: the straggler is the rank with
the most, and the node whose stretch differs most across ranks is where they diverge. Only
times on one rank's own clock are compared with each other, so no cross-host clock sync is needed.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gprof.graph.model import Node
from gprof.store.queries.collectives import RankStep

Intervals = list[tuple[int, int]]


def is_collective(node: Node) -> bool:
    return "kind" in node.attrs


def merge(intervals: Sequence[tuple[int, int]]) -> Intervals:
    """Sorted, disjoint union of half-open intervals."""
    out: Intervals = []
    for lo, hi in sorted(i for i in intervals if i[1] > i[0]):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def subtract(a: Intervals, b: Intervals) -> Intervals:
    """Merged ``a`` minus merged ``b``."""
    out: Intervals = []
    j = 0
    for lo, hi in a:
        while j < len(b) and b[j][1] <= lo:
            j += 1
        k = j
        cur = lo
        while k < len(b) and b[k][0] < hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            k += 1
        if cur < hi:
            out.append((cur, hi))
    return out


def overlap(lo: int, hi: int, merged: Intervals, starts: list[int]) -> int:
    """Length of [lo, hi) covered by ``merged`` (``starts`` = its interval starts, for bisect)."""
    total = 0
    i = max(0, bisect_right(starts, lo) - 1)
    while i < len(merged) and merged[i][0] < hi:
        a, b = merged[i]
        total += max(0, min(b, hi) - max(a, lo))
        i += 1
    return total


def _must_be_done_by(step: RankStep, pos: int, step_end: int) -> int:
    """When the collective at position ``pos`` has certainly completed on this rank: the start of the
    next op if the call blocked, else of the first later op that reads or writes its tensors."""
    c = step.full[step.idx[pos]]
    if c.attrs.get("async_op") is False:
        return step.start[pos + 1] if pos + 1 < len(step.idx) else step_end
    touch = step.first_touch(pos + 1, {m.storage for m in (*c.inputs, *c.outputs)} - {0})
    return step_end if touch is None else step.start[touch]


@dataclass
class RankTimes:
    rank: int
    wall_ns: int = 0
    compute_ns: int = 0
    comm_ns: int = 0
    wait_ns: int = 0
    collectives: int = 0
    comm_bytes: int = 0
    #: busy (non-communication) ns of the stretch ending at each node, by stable key
    busy_by_key: dict[str, int] = field(default_factory=dict)

    @property
    def other_ns(self) -> int:
        return max(0, self.wall_ns - self.compute_ns - self.comm_ns)

    @property
    def busy_ns(self) -> int:
        return max(0, self.wall_ns - self.comm_ns)


#: pseudo keys for the time a step spends outside its first and last op (sleeps, data loading)
BEFORE_FIRST_OP = "(before the first op)"
AFTER_LAST_OP = "(after the last op)"
OUTSIDE_OPS = "(before the first or after the last op)"


def _merge_sorted(starts: np.ndarray, ends: np.ndarray) -> Intervals:
    """:func:`merge` of intervals already sorted by start, in numpy: a million ops' intervals in
    milliseconds. An interval opens a new run where it starts after every earlier one has ended."""
    keep = ends > starts
    lo, hi = starts[keep], ends[keep]
    if not len(lo):
        return []
    run_end = np.maximum.accumulate(hi)
    first = np.flatnonzero(np.r_[True, lo[1:] > run_end[:-1]])
    last = np.r_[first[1:] - 1, len(lo) - 1]
    return list(zip(lo[first].tolist(), run_end[last].tolist()))


def rank_times(rank: int, step: RankStep, wall_ns: int, start_ns: int | None = None) -> RankTimes:
    """Account one rank's step (its nodes in start order, ``gprof.store.queries.collectives.rank_step``).
    ``wall_ns`` is the step's wall time from its metadata and ``start_ns`` its start on the node clock,
    when the capture recorded it; without it the time outside the ops is one pseudo node, since its head
    and tail cannot be told apart. Per-node work is numpy: a rank may have a million nodes."""
    t = RankTimes(rank=rank, wall_ns=wall_ns)
    if not step.idx:
        return t
    starts = np.asarray(step.start, dtype=np.int64)
    ends = starts + np.asarray(step.dur, dtype=np.int64)
    t0 = int(starts[0])
    t1 = max(t0 + wall_ns, int(ends.max()))
    collectives = {i for i, n in step.full.items() if is_collective(n)}
    positions = [p for p, i in enumerate(step.idx) if i in collectives] if collectives else []
    coll = np.zeros(len(starts), dtype=bool)
    coll[positions] = True
    comm: Intervals = []
    for pos in positions:
        n = step.full[step.idx[pos]]
        t.comm_ns += n.dur_ns
        t.collectives += 1
        t.comm_bytes += int(n.attrs.get("bytes") or 0)
        end = min(_must_be_done_by(step, pos, t1), int(n.attrs.get("end_ns") or t1))
        comm.append((n.start_ns, max(n.start_ns + n.dur_ns, end)))
    t.compute_ns = int((ends - starts)[~coll].sum())
    waiting = subtract(merge(comm), _merge_sorted(starts, ends)) if comm else []
    t.wait_ns = sum(b - a for a, b in waiting)
    t.comm_ns += t.wait_ns
    # each node's stretch: from the latest end before it (or the first start) to its own end
    prev = np.maximum.accumulate(np.r_[t0, ends[:-1]])
    counted = (ends > prev) & ~coll
    busy = np.where(counted, ends - prev, 0)
    if waiting:  # less the waiting inside the stretch, for the few stretches that hold some
        w_starts = [a for a, _ in waiting]
        touched = np.searchsorted(np.array(w_starts), ends, "left") > np.searchsorted(
            np.array([b for _, b in waiting]), prev, "right")
        for p in np.flatnonzero(counted & touched).tolist():
            busy[p] -= overlap(int(prev[p]), int(ends[p]), waiting, w_starts)
    t.busy_by_key = dict(zip(step.key, busy.tolist()))
    outside = max(0, wall_ns - (max(t0, int(ends.max())) - t0))
    if start_ns is None:
        t.busy_by_key[OUTSIDE_OPS] = outside
    else:
        head = max(0, t0 - start_ns)
        t.busy_by_key[BEFORE_FIRST_OP] = head
        t.busy_by_key[AFTER_LAST_OP] = max(0, outside - head)
    return t
