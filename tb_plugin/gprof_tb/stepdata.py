"""Per-step-file aggregates, computed in SQLite once and cached by (path, mtime, size).

A million-node step must answer every route in well under 200 ms, so nothing here walks the nodes
in Python per request: each full-table aggregation runs once per file and is memoised on the
:class:`StepData`; requests combine those small tables. Failures are never cached (a step file that
is half-written now is replaced atomically later), because a failing computation stores nothing.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gprof.report import module_table, step_summary
from gprof.store import StepReader

T = TypeVar("T")
log = logging.getLogger(__name__)

#: "dtype|device|shape|nbytes|storage" -> "dtype[shape]" for grouping by input shape
_TENSOR_RE = re.compile(r"([^|;]*)\|[^|;]*\|([^|;]*)\|[^|;]*\|[^|;]*")


def input_shapes(encoded: str) -> str:
    """The stored inputs column without storage ids and byte counts, e.g. ``float32[64,256], float32[512]``."""
    return ", ".join(f"{m[1]}[{m[2]}]" for m in _TENSOR_RE.finditer(encoded)) if encoded else ""


class StepData:
    """One open step file plus whatever aggregates have been asked of it so far."""

    def __init__(self, path: Path, key: tuple = ()) -> None:
        self.path = path
        #: (path, mtime_ns, size): what the cache knows this file by
        self.key = key
        self.reader = StepReader(path)
        self._memo: dict[Any, Any] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._pending: set[Any] = set()
        self._guard = threading.Lock()
        #: background computations get their own SQLite connection, so a multi-second aggregation
        #: never queues a request's index lookup behind it
        self._local = threading.local()

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()`` once per key (other keys compute concurrently); an exception stores
        nothing, so it is retried next time."""
        if key in self._memo:
            return self._memo[key]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def memo_async(self, key: Any, compute: Callable[[], T]) -> T | None:
        """The memoised value, or None while a background thread computes it. For aggregates that
        take seconds on a million-node step, so a request never waits for them."""
        with self._guard:
            if key in self._memo:
                return self._memo[key]
            if key in self._pending:
                return None
        self._background([(key, compute)])
        return None

    def prewarm(self) -> None:
        """Compute, in one background thread and in this order, what the first page view needs
        (the collapsed graph's tables) and then what expanding large modules and the tables need."""
        self._background([("module_phase", self._module_phase_rows), ("module_edges", self._module_edge_rows),
                          ("op_stats", self._op_stat_rows), ("op_edges", self._op_edge_rows)])

    def idle(self) -> bool:
        """True when no background computation is running for this file."""
        with self._guard:
            return not self._pending

    def _background(self, jobs: list[tuple[Any, Callable[[], Any]]]) -> None:
        with self._guard:
            jobs = [(k, c) for k, c in jobs if k not in self._memo and k not in self._pending]
            self._pending.update(k for k, _ in jobs)
        if not jobs:
            return

        def run() -> None:
            self._local.reader = StepReader(self.path)
            try:
                for key, compute in jobs:
                    try:
                        self.memo(key, compute)
                    except Exception:
                        log.exception("computing %s for %s failed", key, self.path)
                    finally:
                        with self._guard:
                            self._pending.discard(key)
            finally:
                self._local.reader.close()

        threading.Thread(target=run, name=f"gprof-warm-{self.path.name}", daemon=True).start()

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        return getattr(self._local, "reader", self.reader).sql(query, params)

    def close(self) -> None:
        self.reader.close()

    # ------------------------------------------------------------------ cached aggregates
    def summary(self) -> dict[str, Any]:
        """The full report summary (``gprof.report.step_summary``): several full scans, so cached."""
        return self.memo("summary", lambda: step_summary(self.reader, top=15))

    def headline(self) -> dict[str, Any]:
        """What the summary strip shows, derived from the (module, phase) table the graph needs anyway."""
        m, mem = self.reader.meta, self.reader.memory
        phases: dict[str, int] = {}
        time_ns = flops = 0
        device_ns = None
        for _, phase, count, dur, dev, _, _, fl in self.module_phase_stats():
            phases[phase] = phases.get(phase, 0) + count
            time_ns += dur or 0
            flops += fl or 0
            if dev is not None:
                device_ns = (device_ns or 0) + dev
        return {"step": m.step, "rank": m.rank, "world_size": m.world_size, "complete": m.complete, "error": m.error,
                "nodes": sum(phases.values()), "phases": phases, "time_ns": time_ns, "device_time_ns": device_ns,
                "wall_ns": m.wall_ns, "flops": flops, "peak_memory_bytes": mem.peak_bytes, "peak_node": mem.peak_node,
                "memory_by_category": mem.by_category, "aggregate_only": m.aggregate_only,
                "kineto_trace": m.extra.get("kineto_trace"), "torch_version": m.torch_version}

    def modules(self) -> list[dict[str, Any]]:
        return self.memo("modules", lambda: module_table(self.reader))

    def module_types(self) -> dict[str, str]:
        return self.memo("module_types", lambda: {m.fqn: m.type for m in self.reader.modules().values()})

    def analyses(self) -> dict[str, Any]:
        return self.memo("analyses", self.reader.analyses)

    # The collapsed graph needs only (module, phase) tables. Expanding a module with many ops, the
    # diff and the op tables use the finer (module, phase, op) tables, computed in the background
    # after the first view; until they are ready, a module's share is read through the indexes.
    def op_stats(self) -> list[tuple]:
        """(module, phase, op, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops, min_dur, max_dur)."""
        return self.memo("op_stats", self._op_stat_rows)

    def _op_stat_rows(self) -> list[tuple]:
        return self.sql("SELECT * FROM agg_op_stats")  # precomputed when the step was written

    def op_edges(self) -> list[tuple]:
        """(src module, src phase, src op, dst module, dst phase, dst op, bytes, count)."""
        return self.memo("op_edges", self._op_edge_rows)

    def _op_edge_rows(self) -> list[tuple]:
        return self.sql("SELECT * FROM agg_op_edges")

    def module_phase_stats(self) -> list[tuple]:
        """(module, phase, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops) per module and phase."""
        return self.memo("module_phase", self._module_phase_rows)

    def _module_phase_rows(self) -> list[tuple]:
        return self.sql("SELECT module, phase, SUM(count), SUM(dur_ns), SUM(device_ns), SUM(alloc_bytes), "
                        "MAX(max_live_bytes), SUM(flops) FROM agg_op_stats GROUP BY module, phase")

    def module_edges(self) -> list[tuple]:
        """Dataflow merged to (src module, src phase, dst module, dst phase) -> (bytes, count)."""
        return self.memo("module_edges", self._module_edge_rows)

    def _module_edge_rows(self) -> list[tuple]:
        return self.sql("SELECT src_module, src_phase, dst_module, dst_phase, SUM(nbytes), SUM(count) "
                        "FROM agg_op_edges WHERE src_module IS NOT dst_module OR src_phase != dst_phase "
                        "GROUP BY 1, 2, 3, 4")

    def direct_nodes(self, module: str | None) -> list[tuple]:
        """The nodes whose innermost module is exactly ``module`` (None: outside every module)."""
        where = "module IS NULL" if module is None else "module = ?"
        return self.memo(("direct", module), lambda: self.sql(
            "SELECT idx, op, phase, dur_ns, device_ns, alloc_bytes, live_bytes, flops, fwd, key FROM nodes "
            f"WHERE {where} ORDER BY idx", () if module is None else (module,)))

    def direct_edges(self, module: str | None) -> list[tuple]:
        """Edges with at least one end directly in ``module``: (src, dst, storage, nbytes, src module,
        dst module, src phase, dst phase, src op, dst op)."""
        where_a = "a.module IS NULL" if module is None else "a.module = ?"
        where_b = "b.module IS NULL" if module is None else "b.module = ?"
        params = () if module is None else (module,)
        head = ("SELECT e.src, e.dst, e.storage, e.nbytes, a.module, b.module, a.phase, b.phase, a.op, b.op "
                "FROM nodes {x} JOIN edges e ON e.{xe} = {x}.idx JOIN nodes {y} ON {y}.idx = e.{ye} WHERE {w}")
        q = (head.format(x="a", xe="src", y="b", ye="dst", w=where_a) + " UNION "
             + head.format(x="b", xe="dst", y="a", ye="src", w=where_b))
        return self.memo(("direct_edges", module), lambda: self.sql(q, params + params))

    def direct_op_stats(self, module: str | None) -> list[tuple]:
        """(op, phase, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops) of a module's own ops."""
        if "op_stats" in self._memo:
            def split() -> dict[str | None, list[tuple]]:
                out: dict[str | None, list[tuple]] = {}
                for m, phase, op, *rest in self.op_stats():
                    out.setdefault(m, []).append((op, phase, *rest[:6]))
                return out
            return self.memo("direct_op_stats", split).get(module, [])
        where = "module IS NULL" if module is None else "module = ?"
        return self.sql(
            "SELECT op, phase, COUNT(*), SUM(dur_ns), SUM(device_ns), SUM(alloc_bytes), MAX(live_bytes), SUM(flops) "
            f"FROM nodes WHERE {where} GROUP BY op, phase", () if module is None else (module,))

    def direct_op_edges(self, module: str | None) -> list[tuple]:
        """A module's own ops' edges merged by op: (outgoing, this op, this phase, other module, other
        phase, other op, bytes, count), where outgoing is 1 for edges leaving the module's ops."""
        if "op_edges" in self._memo:
            def split() -> dict[str | None, list[tuple]]:
                out: dict[str | None, list[tuple]] = {}
                for am, ap, aop, bm, bp, bop, nbytes, count in self.op_edges():
                    out.setdefault(am, []).append((1, aop, ap, bm, bp, bop, nbytes, count))
                    out.setdefault(bm, []).append((0, bop, bp, am, ap, aop, nbytes, count))
                return out
            return self.memo("direct_op_edges", split).get(module, [])
        where = "a.module IS NULL" if module is None else "a.module = ?"
        head = ("SELECT {out}, a.op, a.phase, b.module, b.phase, b.op, SUM(e.nbytes), COUNT(*) FROM nodes a "
                "JOIN edges e ON e.{ae} = a.idx JOIN nodes b ON b.idx = e.{be} WHERE " + where +
                " GROUP BY 2, 3, 4, 5, 6")
        q = head.format(out=1, ae="src", be="dst") + " UNION ALL " + head.format(out=0, ae="dst", be="src")
        params = () if module is None else (module,)
        return self.sql(q, params + params)

    def op_table(self, group: str) -> list[dict[str, Any]] | None:
        """Rows of the op table; None while the op + input shape grouping (a Python pass over every
        node, since stored inputs carry storage ids) is still being computed in the background."""
        if group == "op_shape":
            return self.memo_async(("ops", group), lambda: _op_table(self, group))
        return self.memo(("ops", group), lambda: _op_table(self, group))

    def key_counts(self) -> dict[tuple, int]:
        """(module, phase, op) -> count. Keys are ``<module>:<phase>:<op>#<n>`` with n counting from 0,
        so these counts determine the step's whole key set; a step diff needs nothing else."""
        return self.memo("key_counts", lambda: {(m, p, o): c for m, p, o, c, *_ in self.op_stats()})

    def memory_curve(self, points: int) -> dict[str, Any]:
        return self.memo(("memory", points), lambda: _memory_curve(self, points))


def _op_table(data: StepData, group: str) -> list[dict[str, Any]]:
    merged: dict[tuple, list] = {}

    def add(key: tuple, count: int, dur: int | None, dev: int | None, alloc: int | None, flops: int | None,
            dmin: int | None, dmax: int | None, phase: str) -> None:
        acc = merged.get(key)
        if acc is None:
            merged[key] = [count, dur or 0, dev, alloc or 0, flops or 0, dmin or 0, dmax or 0, {phase}]
            return
        acc[0] += count
        acc[1] += dur or 0
        acc[2] = acc[2] if dev is None else (acc[2] or 0) + dev
        acc[3] += alloc or 0
        acc[4] += flops or 0
        acc[5] = min(acc[5], dmin or 0)
        acc[6] = max(acc[6], dmax or 0)
        acc[7].add(phase)

    if group in ("op", "module"):
        for module, phase, op, count, dur, dev, alloc, _, flops, dmin, dmax in data.op_stats():
            add((op,) if group == "op" else (module,), count, dur, dev, alloc, flops, dmin, dmax, phase)
    else:  # op + input shape: the stored inputs carry storage ids, so strip them in one Python pass
        for op, inputs, dur, dev, alloc, flops, phase in data.sql(
                "SELECT op, inputs, dur_ns, device_ns, alloc_bytes, flops, phase FROM nodes"):
            add((op, input_shapes(inputs)), 1, dur, dev, alloc, flops, dur, dur, phase)
    rows = [(k, v[:7] + [",".join(sorted(v[7]))]) for k, v in merged.items()]
    out = []
    for key, (count, dur, dev, alloc, flops, dmin, dmax, phases) in rows:
        entry: dict[str, Any] = {"module" if group == "module" else "op": key[0]}
        if group == "op_shape":
            entry["input_shapes"] = key[1]
        dur = dur or 0
        entry.update({
            "calls": count, "host_self_ns": dur, "host_total_ns": dur, "device_self_ns": dev,
            "device_total_ns": dev, "mean_ns": dur // count if count else 0, "min_ns": dmin or 0,
            "max_ns": dmax or 0, "alloc_bytes": alloc or 0, "flops": flops or 0,
            "phases": phases})
        out.append(entry)
    if group == "module":  # inclusive (total) time: a module's own ops plus its submodules'
        incl = {e["module"]: e for e in data.modules()}
        for e in out:
            m = incl.get(e["module"])
            if m is not None:
                e["host_total_ns"] = sum(m[f"{p}_ns"] for p in ("forward", "backward", "optimizer", "other"))
    return out


def _memory_curve(data: StepData, points: int) -> dict[str, Any]:
    """Live bytes over the step, at most ``points`` buckets, each the bucket's maximum and the node
    where it happened (SQLite returns the bare ``idx`` of the MAX row), so a click selects a node."""
    lo, hi = data.sql("SELECT MIN(idx), MAX(idx) FROM nodes")[0]
    if lo is None:
        return {"points": [], "peak_bytes": 0, "peak_node": None}
    width = max(1, -(-(hi - lo + 1) // points))
    rows = data.sql(
        "SELECT (idx - ?) / ? AS b, MAX(live_bytes), idx, phase FROM nodes GROUP BY b ORDER BY b", (lo, width))
    mem = data.reader.memory
    return {
        "points": [[idx, live or 0, phase] for _, live, idx, phase in rows],
        "bucket_nodes": width, "peak_bytes": mem.peak_bytes, "peak_node": mem.peak_node,
        "baseline_bytes": mem.baseline_bytes, "by_category": mem.by_category,
        "category_curve": mem.curve or None,
    }


class StepCache:
    """Open :class:`StepData` by (path, mtime, size), least recently used first out."""

    def __init__(self, capacity: int = 6) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, StepData] = OrderedDict()

    def idle(self) -> bool:
        with self._lock:
            items = list(self._items.values())
        return all(d.idle() for d in items)

    def get(self, path: Path) -> StepData:
        st = os.stat(path)
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                return data
        data = StepData(path, key)  # raises StoreError for unreadable files; nothing is cached then
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.capacity:
                # not closed here: another request may still be reading it; GC closes it after
                self._items.popitem(last=False)
        return data
