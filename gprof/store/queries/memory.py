"""Live memory over the step, downsampled inside SQLite."""
from __future__ import annotations

from typing import Any

from gprof.store.step_file import StepReader


def memory_curve(r: StepReader, points: int) -> dict[str, Any]:
    """Live bytes over the step, at most ``points`` buckets, each the bucket's maximum and the node
    where it happened (SQLite returns the bare ``idx`` of the MAX row), so a click selects a node."""
    lo, hi = r.sql("SELECT MIN(idx), MAX(idx) FROM nodes")[0]
    if lo is None:
        return {"points": [], "peak_bytes": 0, "peak_node": None}
    width = max(1, -(-(hi - lo + 1) // points))
    rows = r.sql("SELECT (idx - ?) / ? AS b, MAX(live_bytes), idx, phase FROM nodes GROUP BY b ORDER BY b", (lo, width))
    mem = r.memory
    return {
        "points": [[idx, live or 0, phase] for _, live, idx, phase in rows],
        "bucket_nodes": width, "peak_bytes": mem.peak_bytes, "peak_node": mem.peak_node,
        "baseline_bytes": mem.baseline_bytes, "by_category": mem.by_category,
        "category_curve": mem.curve or None,
    }


def memory_series(r: StepReader, buckets: int) -> list[int]:
    """Max live bytes per bucket of consecutive node indices (about ``buckets`` of them): a sparkline."""
    n = r.meta.node_count or r.count()
    if n == 0:
        return []
    width = max(1, -(-n // buckets))
    rows = r.sql("SELECT idx / ?, MAX(live_bytes) FROM nodes GROUP BY idx / ? ORDER BY 1", (width, width))
    return [v or 0 for _, v in rows]
