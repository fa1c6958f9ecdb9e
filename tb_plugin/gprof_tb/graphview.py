"""The collapsed module graph, computed server-side.

The browser lays out only what is visible (Graphviz needs ~1 s at 2,000 nodes and ~8 s at 5,000),
so the server groups nodes by module prefix at the expanded depth and merges the edges between
groups, summing their bytes. Only an expanded module shows its own ops, one box each up to
``limit`` ops, or one box per op type beyond that. Groups are split by phase, so forward and
backward can be shown together with each backward group linked to its forward group.
"""
from __future__ import annotations

from typing import Any

from gprof.graph.keys import NO_MODULE

from gprof_tb.analysisview import node_marks
from gprof_tb.stepdata import StepData

_STAT_FIELDS = ("count", "dur_ns", "device_ns", "alloc_bytes", "live_max", "flops")


def _module_name(module: str | None) -> str:
    return NO_MODULE if module is None else module


class _Grouper:
    """Maps a node's module to the visible box that holds it, for one set of expanded modules."""

    def __init__(self, expanded: set[str]) -> None:
        self.expanded = expanded
        self._cache: dict[str | None, tuple[str, str | None]] = {}

    def __call__(self, module: str | None) -> tuple[str, str | None]:
        """(kind, name): ("module", prefix) for a collapsed group, ("direct", module) for an expanded one."""
        if module not in self._cache:
            self._cache[module] = self._compute(module)
        return self._cache[module]

    def _compute(self, module: str | None) -> tuple[str, str | None]:
        if module is None:
            return ("direct", None) if NO_MODULE in self.expanded else ("module", NO_MODULE)
        if module == "":
            return "direct", ""
        parts = module.split(".")
        for i in range(len(parts)):
            prefix = ".".join(parts[:i + 1])
            if prefix not in self.expanded:
                return "module", prefix
        return "direct", module


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _new_stats() -> dict[str, Any]:
    return {f: 0 for f in _STAT_FIELDS} | {"device_ns": None}


def _add(stats: dict[str, Any], count: int, dur: int | None, dev: int | None, alloc: int | None,
         live: int | None, flops: int | None) -> None:
    stats["count"] += count
    stats["dur_ns"] += dur or 0
    if dev is not None:
        stats["device_ns"] = (stats["device_ns"] or 0) + dev
    stats["alloc_bytes"] += alloc or 0
    stats["live_max"] = max(stats["live_max"], live or 0)
    stats["flops"] += flops or 0


def collapsed_graph(data: StepData, expanded: set[str], phases: set[str], limit: int = 150) -> dict[str, Any]:
    group = _Grouper(expanded)
    types = data.module_types()
    boxes: dict[str, dict[str, Any]] = {}

    def box(bid: str, **attrs: Any) -> dict[str, Any]:
        b = boxes.get(bid)
        if b is None:
            b = boxes[bid] = {"id": bid, **attrs, **_new_stats(), "marks": {}}
        return b

    # 1. module groups from the cached (module, phase) table; collect the expanded leaves
    direct_modules: dict[str | None, int] = {}
    for module, phase, count, dur, dev, alloc, live, flops in data.module_phase_stats():
        if phase not in phases:
            continue
        kind, name = group(module)
        if kind == "direct":
            direct_modules[name] = direct_modules.get(name, 0) + count
            continue
        b = box(f"m:{name}@{phase}", kind="module", module=name, phase=phase, parent=_parent(name),
                type=types.get(name, "outside modules" if name == NO_MODULE else ""))
        _add(b, count, dur, dev, alloc, live, flops)

    # 2. the ops directly inside expanded modules: one box per node, or per op type when too many
    node_box: dict[int, str] = {}
    individual: dict[str | None, bool] = {}
    for module, total in direct_modules.items():
        individual[module] = total <= limit
        mname = _module_name(module)
        for idx, op, phase, dur, dev, alloc, live, flops, fwd, key in data.direct_nodes(module):
            if phase not in phases:
                continue
            if individual[module]:
                b = box(f"n:{idx}", kind="node", idx=idx, op=op, key=key, fwd=fwd, module=mname, phase=phase,
                        parent=mname)
            else:
                b = box(f"o:{mname}@{phase}@{op}", kind="ops", op=op, module=mname, phase=phase, parent=mname)
            node_box[idx] = b["id"]
            _add(b, 1, dur, dev, alloc, live, flops)

    def box_of(idx: int, module: str | None, phase: str) -> str:
        kind, name = group(module)
        if kind == "direct":
            return node_box.get(idx, "")
        return f"m:{name}@{phase}"

    # 3. dataflow edges, merged between boxes
    merged: dict[tuple[str, str], list[int]] = {}

    def link(a: str, b: str, nbytes: int, count: int) -> None:
        if a and b and a != b and a in boxes and b in boxes:
            e = merged.setdefault((a, b), [0, 0])
            e[0] += nbytes or 0
            e[1] += count

    for am, ap, bm, bp, nbytes, count in data.module_edges():
        if ap in phases and bp in phases and group(am)[0] == "module" and group(bm)[0] == "module":
            link(f"m:{group(am)[1]}@{ap}", f"m:{group(bm)[1]}@{bp}", nbytes, count)
    seen: set[tuple[int, int, int]] = set()
    for module in direct_modules:
        for src, dst, storage, nbytes, am, bm, ap, bp, _, _ in data.direct_edges(module):
            if (src, dst, storage) in seen or ap not in phases or bp not in phases:
                continue
            seen.add((src, dst, storage))
            link(box_of(src, am, ap), box_of(dst, bm, bp), nbytes, 1)
    edges = [{"src": a, "dst": b, "bytes": v[0], "count": v[1], "kind": "data"} for (a, b), v in merged.items()]

    # 4. backward -> forward partner links
    for b in boxes.values():
        if b["phase"] != "backward":
            continue
        if b["kind"] == "module" and f"m:{b['module']}@forward" in boxes:
            edges.append({"src": b["id"], "dst": f"m:{b['module']}@forward", "kind": "partner"})
        elif b["kind"] == "node" and b["fwd"] is not None and f"n:{b['fwd']}" in boxes:
            edges.append({"src": b["id"], "dst": f"n:{b['fwd']}", "kind": "partner"})

    # 5. unfused chains, hazards and compile regions, counted onto the boxes that hold them
    marks = node_marks(data)
    if marks:
        for idx, module, phase in _marked_nodes(data, marks):
            bid = box_of(idx, module, phase) if phase in phases else ""
            if bid in boxes:
                for kind, numbers in marks[idx].items():
                    boxes[bid]["marks"].setdefault(kind, []).extend(numbers)
    clusters = sorted(m for m in expanded if m in types or m == NO_MODULE or _has_prefix(types, m))
    return {"boxes": list(boxes.values()), "edges": edges, "clusters": clusters,
            "types": {m: types.get(m, "") for m in clusters}, "phases": sorted(phases)}


def _has_prefix(types: dict[str, str], name: str) -> bool:
    return any(t.startswith(name + ".") for t in types)


def _marked_nodes(data: StepData, marks: dict[int, Any]) -> list[tuple]:
    def compute() -> list[tuple]:
        ids = sorted(marks)
        out: list[tuple] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out += data.sql(f"SELECT idx, module, phase FROM nodes WHERE idx IN ({','.join('?' * len(chunk))})",
                            tuple(chunk))
        return out
    return data.memo("marked_nodes", compute)
