"""The module table: per module, inclusive of its submodules, from the write-time aggregates."""
from __future__ import annotations

from typing import Any

from gprof.store.step_file import StepReader


def _chain(module: str) -> list[str]:
    """The root, then every prefix of ``module`` down to itself: who a module's numbers count for."""
    parts = module.split(".") if module else []
    return list(dict.fromkeys([""] + [".".join(parts[:i + 1]) for i in range(len(parts))]))


def module_table(r: StepReader) -> list[dict[str, Any]]:
    """Per module, inclusive of submodules: forward/backward time, allocations, saved activations."""
    rows = r.sql(  # from the aggregates written with the step
        "SELECT module, phase, SUM(count), SUM(dur_ns), SUM(alloc_bytes), SUM(flops) FROM agg_op_stats "
        "WHERE module IS NOT NULL GROUP BY module, phase")
    agg: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        e = agg.get(name)
        if e is None:
            e = agg[name] = {"module": name, "forward_ns": 0, "backward_ns": 0, "optimizer_ns": 0, "other_ns": 0,
                             "nodes": 0, "alloc_bytes": 0, "flops": 0, "saved_activation_bytes": 0}
        return e

    for module, phase, count, dur, alloc, flops in rows:
        for name in _chain(module):
            e = entry(name)
            e[f"{phase}_ns"] += dur or 0
            e["nodes"] += count
            e["alloc_bytes"] += alloc or 0
            e["flops"] += flops or 0
    for module, nbytes in r.memory.saved_activations.items():
        for name in _chain(module):
            entry(name)["saved_activation_bytes"] += nbytes
    return sorted(agg.values(), key=lambda e: e["module"])
