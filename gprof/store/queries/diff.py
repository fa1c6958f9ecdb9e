"""The difference between two steps' node sets, by stable node key, without reading their nodes."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def key_counts(op_stats: Iterable[tuple]) -> dict[tuple, int]:
    """(module, phase, op) -> count, from ``op_stat_rows``. Keys are ``<module>:<phase>:<op>#<n>``
    with n counting from 0, so these counts determine the step's whole key set."""
    return {(m, p, o): c for m, p, o, c, *_ in op_stats}


def step_diff(ca: dict[tuple, int], cb: dict[tuple, int], limit: int = 500) -> dict[str, Any]:
    """Nodes added and removed from step a (key counts ``ca``) to step b (``cb``), grouped by
    (module, phase, op), the first ``limit`` groups listed."""
    changed = [g for g in ca.keys() | cb.keys() if ca.get(g, 0) != cb.get(g, 0)]
    changed.sort(key=lambda g: (g[0] is None, g[0] or "", g[1], g[2]))
    changes: list[dict[str, Any]] = []
    added = removed = 0
    for module, phase, op in changed:
        na, nb = ca.get((module, phase, op), 0), cb.get((module, phase, op), 0)
        added += max(0, nb - na)
        removed += max(0, na - nb)
        if len(changes) < limit:
            changes.append({"module": module, "phase": phase, "op": op, "count_a": na, "count_b": nb,
                            "first_key": f"{'-' if module is None else module}:{phase}:{op}#{min(na, nb)}",
                            "change": "added" if nb > na else "removed"})
    nodes_a, nodes_b = sum(ca.values()), sum(cb.values())
    return {"nodes_a": nodes_a, "nodes_b": nodes_b, "added": added, "removed": removed,
            "unchanged": nodes_a - removed, "changes": changes, "truncated": len(changed) > limit}
