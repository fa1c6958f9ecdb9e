"""The collapsed module graph, computed server-side.

The browser lays out only what is visible (Graphviz needs ~1 s at 2,000 nodes and ~8 s at 5,000),
so the server groups nodes by module prefix at the expanded depth and merges the edges between
groups, summing their bytes. Only an expanded module shows its own ops, one box each up to
``limit`` ops, or one box per op type beyond that. Groups are split by phase, so forward and
backward can be shown together with each backward group linked to its forward group.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gprof.graph.keys import NO_MODULE
from gprof.graph.model import PHASES
from gprof_tb.stepdata import StepData, Target

#: phases per module group in the (group, phase) keys below
_NPH = len(PHASES)
MARK_KINDS = ("chains", "hazards", "regions")
_STAT_FIELDS = ("count", "dur_ns", "device_ns", "alloc_bytes", "live_max", "flops")


class ModuleTree:
    """The step's module hierarchy as arrays, with the (module, phase) stats and the module-level
    edges keyed by integer ids, so that regrouping for any set of expanded modules is a handful of
    numpy operations over a few thousand rows, not a Python loop per row.

    Ids name prefixes: 0 is the root model (always expanded), ``-`` stands for ops outside every
    module, and ``a.b`` is both a module and the prefix of ``a.b.c``.
    """

    def __init__(self, data: StepData) -> None:
        self.names: list[str] = [""]
        self.ids: dict[str, int] = {"": 0}
        chains: dict[int, list[int]] = {0: []}
        stats = data.module_phase_stats()
        edges = data.module_edges()
        for module in {r[0] for r in stats} | {r[0] for r in edges} | {r[2] for r in edges}:
            self._add(module, chains)
        depth = max((len(c) for c in chains.values()), default=0)
        self.anc = np.full((max(depth, 1), len(self.names)), -1, dtype=np.int64)
        for pid, chain in chains.items():
            self.anc[:len(chain), pid] = chain
        phase_id = {p: i for i, p in enumerate(PHASES)}
        self.s_mod = np.array([self.id_of(r[0]) for r in stats], dtype=np.int64)
        self.s_phase = np.array([phase_id.get(r[1], 3) for r in stats], dtype=np.int64)
        cols = np.array([[r[2], r[3] or 0, r[4] or 0, r[4] is not None, r[5] or 0, r[6] or 0, r[7] or 0]
                         for r in stats], dtype=np.float64).reshape(-1, 7)
        self.s_count, self.s_dur, self.s_dev, self.s_has_dev, self.s_alloc, self.s_live, self.s_flops = cols.T
        self.e_ma = np.array([self.id_of(r[0]) for r in edges], dtype=np.int64)
        self.e_pa = np.array([phase_id.get(r[1], 3) for r in edges], dtype=np.int64)
        self.e_mb = np.array([self.id_of(r[2]) for r in edges], dtype=np.int64)
        self.e_pb = np.array([phase_id.get(r[3], 3) for r in edges], dtype=np.int64)
        ecols = np.array([[r[4] or 0, r[5]] for r in edges], dtype=np.float64).reshape(-1, 2)
        self.e_bytes, self.e_count = ecols.T

    def _add(self, module: str | None, chains: dict[int, list[int]]) -> None:
        if module == "":
            return
        parts = [NO_MODULE] if module is None else module.split(".")
        chain = []
        for i in range(len(parts)):
            name = ".".join(parts[:i + 1])
            pid = self.ids.get(name)
            if pid is None:
                pid = self.ids[name] = len(self.names)
                self.names.append(name)
            chain.append(pid)
            chains[pid] = list(chain)

    def id_of(self, module: str | None) -> int:
        return self.ids[NO_MODULE if module is None else module]

    def groups(self, expanded: set[str]) -> np.ndarray:
        """For each id, the id of the visible collapsed group that holds it, or -1 when the module
        and all its ancestors are expanded (its own ops are shown)."""
        exp = np.zeros(len(self.names), dtype=bool)
        exp[0] = True
        exp[[self.ids[m] for m in expanded if m in self.ids]] = True
        group = np.full(len(self.names), -1, dtype=np.int64)
        for level in self.anc:
            pick = (group == -1) & (level >= 0)
            pick[pick] = ~exp[level[pick]]
            group[pick] = level[pick]
        return group


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


def _aggregate(keys: np.ndarray, *weights: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unique keys and the per-key sums of each weight column."""
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, [np.bincount(inv, w, minlength=len(uniq)) for w in weights]


def collapsed_graph(data: StepData, expanded: set[str], phases: set[str], limit: int = 150,
                    target: Target = None) -> dict[str, Any]:
    tree: ModuleTree = data.memo("module_tree", lambda: ModuleTree(data))
    group = tree.groups(expanded)
    types = data.module_types()
    wanted = np.array([i for i, p in enumerate(PHASES) if p in phases], dtype=np.int64)
    boxes: dict[str, dict[str, Any]] = {}

    def box(bid: str, **attrs: Any) -> dict[str, Any]:
        b = boxes.get(bid)
        if b is None:
            b = boxes[bid] = {"id": bid, **attrs, **_new_stats(), "marks": {}}
        return b

    # 1. collapsed module groups: sum the cached (module, phase) rows by visible group
    in_phase = np.isin(tree.s_phase, wanted)
    g = group[tree.s_mod]
    rows = in_phase & (g >= 0)
    keys = g[rows] * _NPH + tree.s_phase[rows]
    uniq, (count, dur, dev, has_dev, alloc, flops) = _aggregate(
        keys, *(col[rows] for col in (tree.s_count, tree.s_dur, tree.s_dev, tree.s_has_dev, tree.s_alloc,
                                      tree.s_flops)))
    live = np.zeros(len(uniq))
    np.maximum.at(live, np.searchsorted(uniq, keys), tree.s_live[rows])
    for i, key in enumerate(uniq.tolist()):
        name, phase = tree.names[key // _NPH], PHASES[key % _NPH]
        boxes[f"m:{name}@{phase}"] = {
            "id": f"m:{name}@{phase}", "kind": "module", "module": name, "phase": phase, "parent": _parent(name),
            "type": types.get(name, "outside modules" if name == NO_MODULE else ""), "count": int(count[i]),
            "dur_ns": int(dur[i]), "device_ns": int(dev[i]) if has_dev[i] else None, "alloc_bytes": int(alloc[i]),
            "live_max": int(live[i]), "flops": int(flops[i]), "marks": {}}

    # 2. the ops directly inside expanded modules: one box per node, or per op type when too many
    direct = in_phase & (g == -1)
    direct_ids, (direct_counts,) = _aggregate(tree.s_mod[direct], tree.s_count[direct])
    individual: dict[str, bool] = {}
    for pid, total in zip(direct_ids.tolist(), direct_counts.tolist()):
        mname = tree.names[pid]
        module = None if mname == NO_MODULE else mname
        individual[mname] = total <= limit
        if individual[mname]:
            for idx, op, phase, dur_, dev_, alloc_, live_, flops_, fwd, key in data.direct_nodes(module):
                if phase in phases:
                    b = box(f"n:{idx}", kind="node", idx=idx, op=op, key=key, fwd=fwd, module=mname, phase=phase,
                            parent=mname)
                    _add(b, 1, dur_, dev_, alloc_, live_, flops_)
            continue
        for op, phase, count_, dur_, dev_, alloc_, live_, flops_ in data.direct_op_stats(module):
            if phase in phases:
                b = box(f"o:{mname}@{phase}@{op}", kind="ops", op=op, module=mname, phase=phase, parent=mname)
                _add(b, count_, dur_, dev_, alloc_, live_, flops_)

    def box_of(idx: int | None, module: str | None, phase: str, op: str) -> str:
        """The visible box holding a node (idx None: any node of that module, phase and op)."""
        gid = int(group[tree.id_of(module)])
        if gid != -1:
            return f"m:{tree.names[gid]}@{phase}"
        mname = NO_MODULE if module is None else module
        return f"n:{idx}" if individual.get(mname) else f"o:{mname}@{phase}@{op}"

    # 3. dataflow edges, merged between boxes: module-level rows for collapsed groups...
    ga, gb = group[tree.e_ma], group[tree.e_mb]
    ka, kb = ga * _NPH + tree.e_pa, gb * _NPH + tree.e_pb
    erows = np.isin(tree.e_pa, wanted) & np.isin(tree.e_pb, wanted) & (ga >= 0) & (gb >= 0) & (ka != kb)
    span = _NPH * len(tree.names)
    pairs, (nbytes, ecount) = _aggregate(ka[erows] * span + kb[erows], tree.e_bytes[erows], tree.e_count[erows])
    merged: dict[tuple[str, str], list[int]] = {}
    for pair, nb, c in zip(pairs.tolist(), nbytes.tolist(), ecount.tolist()):
        a, b = divmod(pair, span)
        merged[(f"m:{tree.names[a // _NPH]}@{PHASES[a % _NPH]}", f"m:{tree.names[b // _NPH]}@{PHASES[b % _NPH]}")] = [nb, c]

    def link(a: str, b: str, nb: int | None, count: int) -> None:
        if a != b and a in boxes and b in boxes:
            e = merged.setdefault((a, b), [0, 0])
            e[0] += nb or 0
            e[1] += count

    # ... node-level rows for modules shown op by op (few: at most ``limit`` nodes each), views wired to
    # the op that made them (``StepData.direct_edges``) ...
    seen: set[tuple[str, str, int, int, int]] = set()  # each tensor once per pair of boxes
    for mname, one_by_one in individual.items():
        if not one_by_one:
            continue
        for src, dst, storage, nb, am, bm, ap, bp, aop, bop in data.direct_edges(None if mname == NO_MODULE else mname):
            if ap not in phases or bp not in phases:
                continue
            src_box, dst_box = box_of(src, am, ap, aop), box_of(dst, bm, bp, bop)
            if (src_box, dst_box, src, storage, nb) not in seen:
                seen.add((src_box, dst_box, src, storage, nb))
                link(src_box, dst_box, nb, 1)
    # ... and rows merged by op in SQL for modules shown as one box per op type
    for mname, one_by_one in individual.items():
        if one_by_one:
            continue
        for outgoing, op, phase, other, ophase, oop, nb, count_ in data.direct_op_edges(
                None if mname == NO_MODULE else mname):
            other_name = NO_MODULE if other is None else other
            if phase not in phases or ophase not in phases or individual.get(other_name):
                continue  # edges to a module shown op by op were merged from that module's side
            if other_name in individual and other_name != mname and not outgoing:
                continue  # between two op-type modules: counted once, from the source's side
            if other_name == mname and not outgoing:
                continue  # inside the module: the outgoing row has it
            here = f"o:{mname}@{phase}@{op}"
            there = box_of(None, other, ophase, oop)
            link(here, there, nb, count_) if outgoing else link(there, here, nb, count_)
    edges = [{"src": a, "dst": b, "bytes": int(v[0]), "count": int(v[1]), "kind": "data"}
             for (a, b), v in merged.items()]

    # 4. backward -> forward partner links
    for b in boxes.values():
        if b["phase"] != "backward":
            continue
        if b["kind"] == "module" and f"m:{b['module']}@forward" in boxes:
            edges.append({"src": b["id"], "dst": f"m:{b['module']}@forward", "kind": "partner"})
        elif b["kind"] == "node" and b["fwd"] is not None and f"n:{b['fwd']}" in boxes:
            edges.append({"src": b["id"], "dst": f"n:{b['fwd']}", "kind": "partner"})

    # 5. unfused chains, hazards and compile regions: how many marked nodes each box holds
    marked = data.memo(("marked_arrays", target), lambda: _marked_arrays(data, tree, target))
    if len(marked):
        m_group = group[marked[:, 1]]
        on = np.isin(marked[:, 2], wanted)
        for idx, _, _, kind in marked[on & (m_group == -1)].tolist():
            bid = f"n:{idx}"
            if bid in boxes:
                boxes[bid]["marks"][MARK_KINDS[kind]] = boxes[bid]["marks"].get(MARK_KINDS[kind], 0) + 1
        rows = on & (m_group >= 0)
        keys = (m_group[rows] * _NPH + marked[rows, 2]) * len(MARK_KINDS) + marked[rows, 3]
        uniq, counts = np.unique(keys, return_counts=True)
        for key, n in zip(uniq.tolist(), counts.tolist()):
            box_key, kind = divmod(key, len(MARK_KINDS))
            bid = f"m:{tree.names[box_key // _NPH]}@{PHASES[box_key % _NPH]}"
            if bid in boxes:
                boxes[bid]["marks"][MARK_KINDS[kind]] = n
    clusters = sorted(m for m in expanded if m in tree.ids and m != "")
    return {"boxes": list(boxes.values()), "edges": edges, "clusters": clusters,
            "types": {m: types.get(m, "") for m in clusters}, "phases": sorted(phases)}


def _marked_arrays(data: StepData, tree: ModuleTree, target: Target) -> np.ndarray:
    """(idx, module id, phase id, mark kind) for every node an analysis (for ``target``) points at."""
    marks = data.node_marks(target)
    phase_id = {p: i for i, p in enumerate(PHASES)}
    out: list[tuple[int, int, int, int]] = []
    for idx, _, module, phase in data.node_places(sorted(marks)):
        mod = tree.ids.get(NO_MODULE if module is None else module)
        if mod is not None:
            out += [(idx, mod, phase_id.get(phase, 3), MARK_KINDS.index(kind)) for kind in marks[idx]]
    return np.array(out, dtype=np.int64).reshape(-1, 4)
