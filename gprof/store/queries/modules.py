"""The module table: per module, inclusive of its submodules, from the write-time aggregates."""
from __future__ import annotations

import json
from typing import Any

from gprof.store.step_file import StepReader


def _chain(module: str) -> list[str]:
    """The root, then every prefix of ``module`` down to itself: who a module's numbers count for."""
    parts = module.split(".") if module else []
    return list(dict.fromkeys([""] + [".".join(parts[:i + 1]) for i in range(len(parts))]))


def module_table(r: StepReader) -> list[dict[str, Any]]:
    """Per module, inclusive of submodules: forward/backward time, allocations, saved activations;
    with activation checkpointing, the time spent recomputing its forward (``recompute_ns``) and the
    activation bytes recomputing spared it from keeping (``recomputed_activation_bytes``), both only
    in a step that recomputed something, so other steps answer exactly as before.
    An op that updates several parameters at once (a fused or foreach optimizer) counts for each
    parameter's module by its ``param_shares``, not under one module."""
    rows = r.sql(  # from the aggregates written with the step
        "SELECT module, phase, SUM(count), SUM(dur_ns), SUM(alloc_bytes), SUM(flops) FROM agg_op_stats "
        "WHERE module IS NOT NULL GROUP BY module, phase")
    agg: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        e = agg.get(name)
        if e is None:
            e = agg[name] = {"module": name, "forward_ns": 0, "backward_ns": 0, "optimizer_ns": 0, "other_ns": 0,
                             "nodes": 0, "alloc_bytes": 0, "flops": 0, "saved_activation_bytes": 0}
            if checkpointed:
                e["recompute_ns"] = e["recomputed_activation_bytes"] = 0
        return e

    checkpointed = any(row[1] == "recompute" for row in rows)

    for module, phase, count, dur, alloc, flops in rows:
        for name in _chain(module):
            e = entry(name)
            e[f"{phase}_ns"] += dur or 0
            e["nodes"] += count
            e["alloc_bytes"] += alloc or 0
            e["flops"] += flops or 0
    for phase, dur, alloc, flops, attrs in r.sql(  # fused/foreach optimizer ops: their parameters' shares
            "SELECT phase, dur_ns, alloc_bytes, flops, attrs FROM nodes "
            "WHERE module IS NULL AND attrs LIKE '%\"param_shares\"%'"):
        for share_module, _, fraction in json.loads(attrs).get("param_shares", ()):
            for name in _chain(share_module):
                e = entry(name)
                e[f"{phase}_ns"] += round((dur or 0) * fraction)
                e["alloc_bytes"] += round((alloc or 0) * fraction)
                e["flops"] += round((flops or 0) * fraction)
    for field, by_module in (("saved_activation_bytes", r.memory.saved_activations),
                             ("recomputed_activation_bytes", r.memory.recomputed_activations if checkpointed else {})):
        for module, nbytes in by_module.items():
            for name in _chain(module):
                entry(name)[field] += nbytes
    return sorted(agg.values(), key=lambda e: e["module"])
