"""Memory by operator over a range of nodes: what allocated the bytes that make a peak."""
from __future__ import annotations

from typing import Any

from gprof.store.step_file import StepReader


def memory_by_op(r: StepReader, start: int, end: int, limit: int = 200) -> dict[str, Any]:
    """Per op over nodes ``start``..``end`` (inclusive): calls, allocated and freed bytes, the highest
    live bytes and the node where it was reached (``peak_node``), ordered by allocated bytes; plus the
    range's own peak and its node. One range scan on the node index."""
    rows = r.sql("SELECT op, COUNT(*), SUM(alloc_bytes), SUM(freed_bytes), MAX(live_bytes), idx FROM nodes "
                 "WHERE idx >= ? AND idx <= ? GROUP BY op ORDER BY SUM(alloc_bytes) DESC, op", (start, end))
    peak = max(rows, key=lambda x: (x[4] or 0, -x[5]), default=None)
    return {"start": start, "end": end, "total": len(rows), "truncated": len(rows) > limit,
            "peak_bytes": (peak[4] or 0) if peak else 0, "peak_node": peak[5] if peak else None,
            "rows": [{"op": op, "calls": n, "alloc_bytes": alloc or 0, "freed_bytes": freed or 0,
                      "max_live_bytes": live or 0, "peak_node": idx}
                     for op, n, alloc, freed, live, idx in rows[:limit]]}
