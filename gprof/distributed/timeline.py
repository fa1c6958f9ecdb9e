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


def rank_times(rank: int, step: RankStep, wall_ns: int, start_ns: int | None = None) -> RankTimes:
    """Account one rank's step (its nodes in start order, ``gprof.store.queries.collectives.rank_step``).
    ``wall_ns`` is the step's wall time from its metadata and ``start_ns`` its start on the node clock,
    when the capture recorded it; without it the time outside the ops is one pseudo node, since its head
    and tail cannot be told apart."""
    t = RankTimes(rank=rank, wall_ns=wall_ns)
    if not step.idx:
        return t
    starts, durs = step.start, step.dur
    t0 = starts[0]
    t1 = max(t0 + wall_ns, max(s + d for s, d in zip(starts, durs)))
    comm: Intervals = []
    collective = [i in step.full and is_collective(step.full[i]) for i in step.idx]
    for pos in (p for p, c in enumerate(collective) if c):
        n = step.full[step.idx[pos]]
        t.comm_ns += n.dur_ns
        t.collectives += 1
        t.comm_bytes += int(n.attrs.get("bytes") or 0)
        end = min(_must_be_done_by(step, pos, t1), int(n.attrs.get("end_ns") or t1))
        comm.append((n.start_ns, max(n.start_ns + n.dur_ns, end)))
    t.compute_ns = sum(durs) - sum(d for d, c in zip(durs, collective) if c)
    ops = merge(list(zip(starts, (s + d for s, d in zip(starts, durs)))))
    waiting = subtract(merge(comm), ops)
    t.wait_ns = sum(b - a for a, b in waiting)
    t.comm_ns += t.wait_ns
    wait_starts = [a for a, _ in waiting]
    prev_end = t0
    for key, start, dur, coll in zip(step.key, starts, durs, collective):
        end = start + dur
        busy = 0
        if end > prev_end and not coll:
            busy = end - prev_end - (overlap(prev_end, end, waiting, wait_starts) if waiting else 0)
        t.busy_by_key[key] = busy
        prev_end = max(prev_end, end)
    outside = max(0, wall_ns - (prev_end - t0))
    if start_ns is None:
        t.busy_by_key[OUTSIDE_OPS] = outside
    else:
        head = max(0, t0 - start_ns)
        t.busy_by_key[BEFORE_FIRST_OP] = head
        t.busy_by_key[AFTER_LAST_OP] = max(0, outside - head)
    return t
