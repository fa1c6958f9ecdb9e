"""Per-step-file aggregates from the read layer (``gprof.store.queries``), cached by (path, mtime, size).

A million-node step must answer every route in well under 200 ms, so nothing here walks the nodes
in Python per request: each full-table aggregation runs once per file and is memoised on the
:class:`StepData`; requests combine those small tables. Failures are never cached (a step file that
is half-written now is replaced atomically later), because a failing computation stores nothing.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gprof.store import StepReader, StoreError
from gprof.store import queries as q
from gprof.store.queries.findings import marked_chains, step_findings
from gprof.store.queries.retarget import analyses_for
from gprof.store.queries.wiring import wired_edges

T = TypeVar("T")
#: which analyses a view shows: None, the ones stored with the step; else (target, gpu) as
#: ``gprof.analyses.runner.check_target`` returns them, re-targeted from the stored graph (``analyses_for``)
Target = tuple[str | None, str | None] | None
log = logging.getLogger(__name__)


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

    def _reader(self) -> StepReader:
        """This thread's connection: a background computation's own, else the request's."""
        return getattr(self._local, "reader", self.reader)

    def close(self) -> None:
        self.reader.close()

    # ------------------------------------------------------------------ cached aggregates
    def summary(self) -> dict[str, Any]:
        """The full report summary (``step_summary``): several full scans, so cached."""
        return self.memo("summary", lambda: q.step_summary(self.reader, top=15))

    def headline(self) -> dict[str, Any]:
        """What the summary strip shows, derived from the (module, phase) table the graph needs anyway."""
        return q.headline(self.reader, self.module_phase_stats())

    def modules(self) -> list[dict[str, Any]]:
        return self.memo("modules", lambda: q.module_table(self.reader))

    def module_types(self) -> dict[str, str]:
        return self.memo("module_types", lambda: {m.fqn: m.type for m in self.reader.modules().values()})

    # Everything derived from the analyses is cached per Target, so a view switching the fusion target
    # back and forth re-runs nothing.
    def analyses(self, target: Target = None) -> dict[str, Any]:
        """The stored analyses, or with fusion and compile suggestions re-run for ``target``. Raises
        ``NeedsTorchError`` for a file written before op facts were stored."""
        if target is None:
            return self.memo("analyses", self.reader.analyses)
        return self.memo(("analyses", target), lambda: analyses_for(self.reader, *target))

    def retargetable(self) -> bool:
        """Whether the tab can re-target this step: it holds the op facts a torch-free re-target needs
        (a file written before they were stored, or whose facts do not decode, cannot)."""
        def compute() -> bool:
            try:
                return self.reader.op_facts() is not None
            except StoreError:
                return False
        return self.memo("retargetable", compute)

    def analyses_view(self, target: Target = None) -> dict[str, Any]:
        """The analyses normalised for display (``analyses_view``)."""
        return self.memo(("analyses_view", target), lambda: q.analyses_view(self.reader, self.analyses(target)))

    def node_marks(self, target: Target = None) -> dict[int, dict[str, list[int]]]:
        """idx -> {"chains", "hazards", "regions": item numbers}: what the graph highlights. Only the
        unfused chains that matter are marked (``findings.marked_chains``: the top few by saving)."""
        def compute() -> dict[int, dict[str, list[int]]]:
            keep, _ = marked_chains(self.findings(target))
            marks = {i: {k: [c for c in v if c in keep] if k == "chains" else v for k, v in m.items()}
                     for i, m in self.node_items(target).items()}
            return {i: {k: v for k, v in m.items() if v} for i, m in marks.items() if any(m.values())}
        return self.memo(("marks", target), compute)

    def node_items(self, target: Target = None) -> dict[int, dict[str, list[int]]]:
        """idx -> every chain, hazard and region the node belongs to: what the inspector lists, all of
        them, where the graph marks only the chains that matter (:meth:`node_marks`)."""
        return self.memo(("node_items", target), lambda: q.node_marks(self.analyses_view(target)))

    def findings(self, target: Target = None) -> list[dict[str, Any]]:
        """The step's ranked findings (``step_findings``, numbered as in the report), keys resolved to nodes."""
        def compute() -> list[dict[str, Any]]:
            r = self.reader
            mem = {"peak_bytes": r.memory.peak_bytes, "peak_node": r.memory.peak_node,
                   "saved_activations": r.memory.saved_activations}
            found = step_findings(self.analyses(target), mem, r.meta.extra.get("optimizers") or [],
                                  self.headline()["time_ns"])
            for f in found:
                if f["node"] is None and f["key"]:
                    f["node"] = self.node_idx(f["key"])
            return found
        return self.memo(("findings", target), compute)

    def node_idx(self, key: str) -> int | None:
        return q.node_idx(self.reader, key)

    def node_places(self, idxs: list[int]) -> list[tuple[int, str, str | None, str]]:
        """(idx, op, module, phase) of the given nodes."""
        return q.node_briefs(self._reader(), idxs)

    def backward_partners(self, idx: int, limit: int) -> list[int]:
        return [i for i, _ in q.backward_partners(self.reader, idx, limit)]

    # The collapsed graph needs only (module, phase) tables. Expanding a module with many ops, the
    # diff and the op tables use the finer (module, phase, op) tables, computed in the background
    # after the first view; until they are ready, a module's share is read through the indexes.
    def op_stats(self) -> list[tuple]:
        """``op_stat_rows``: (module, phase, op, count, dur_ns, device_ns, alloc_bytes, max_live_bytes,
        flops, min_dur, max_dur)."""
        return self.memo("op_stats", self._op_stat_rows)

    def _op_stat_rows(self) -> list[tuple]:
        return q.op_stat_rows(self._reader())

    def op_edges(self) -> list[tuple]:
        """``op_edge_rows``: (src module, src phase, src op, dst module, dst phase, dst op, bytes, count)."""
        return self.memo("op_edges", self._op_edge_rows)

    def _op_edge_rows(self) -> list[tuple]:
        return q.op_edge_rows(self._reader())

    def module_phase_stats(self) -> list[tuple]:
        """``module_phase_rows``: (module, phase, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops)."""
        return self.memo("module_phase", self._module_phase_rows)

    def _module_phase_rows(self) -> list[tuple]:
        return q.module_phase_rows(self._reader())

    def module_edges(self) -> list[tuple]:
        """``module_edge_rows``: (src module, src phase, dst module, dst phase, bytes, count)."""
        return self.memo("module_edges", self._module_edge_rows)

    def _module_edge_rows(self) -> list[tuple]:
        return q.module_edge_rows(self._reader())  # each tensor once per merged edge

    def direct_nodes(self, module: str | None) -> list[tuple]:
        """``direct_nodes``: the nodes whose innermost module is exactly ``module``."""
        return self.memo(("direct", module), lambda: q.direct_nodes(self._reader(), module))

    def direct_edges(self, module: str | None) -> list[tuple]:
        """``direct_edges``: edges with at least one end directly in ``module``, views wired to the op
        that made them (``wired_edges``)."""
        return self.memo(("direct_edges", module),
                         lambda: wired_edges(self._reader(), q.direct_edges(self._reader(), module)))

    def direct_op_stats(self, module: str | None) -> list[tuple]:
        """(op, phase, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops) of a module's own ops."""
        if "op_stats" in self._memo:
            def split() -> dict[str | None, list[tuple]]:
                out: dict[str | None, list[tuple]] = {}
                for m, phase, op, *rest in self.op_stats():
                    out.setdefault(m, []).append((op, phase, *rest[:6]))
                return out
            return self.memo("direct_op_stats", split).get(module, [])
        return q.direct_op_stats(self._reader(), module)

    def direct_op_edges(self, module: str | None) -> list[tuple]:
        """A module's own ops' edges merged by op (``direct_op_edges``)."""
        if "op_edges" in self._memo:
            def split() -> dict[str | None, list[tuple]]:
                out: dict[str | None, list[tuple]] = {}
                for am, ap, aop, bm, bp, bop, nbytes, count in self.op_edges():
                    out.setdefault(am, []).append((1, aop, ap, bm, bp, bop, nbytes, count))
                    out.setdefault(bm, []).append((0, bop, bp, am, ap, aop, nbytes, count))
                return out
            return self.memo("direct_op_edges", split).get(module, [])
        return q.direct_op_edges(self._reader(), module)

    def op_table(self, group: str) -> list[dict[str, Any]] | None:
        """Rows of the op table; None while the op + input shape grouping (a Python pass over every
        node) is still being computed in the background."""
        def compute() -> list[dict[str, Any]]:
            if group == "op_shape":
                return q.op_table(self._reader(), group)
            return q.op_table(self._reader(), group, self.op_stats(), self.modules() if group == "module" else None)
        if group == "op_shape":
            return self.memo_async(("ops", group), compute)
        return self.memo(("ops", group), compute)

    def key_counts(self) -> dict[tuple, int]:
        """(module, phase, op) -> count, which determines the step's whole key set (``key_counts``)."""
        return self.memo("key_counts", lambda: q.key_counts(self.op_stats()))

    def diff(self, other: StepData, limit: int = 500) -> dict[str, Any]:
        """``step_diff`` from this step to ``other``, cached here per ``other`` file."""
        return self.memo(("diff", other.key), lambda: q.step_diff(self.key_counts(), other.key_counts(), limit))

    def memory_curve(self, points: int) -> dict[str, Any]:
        return self.memo(("memory", points), lambda: q.memory_curve(self._reader(), points))


_PROBLEMS_KEPT = 100_000


def _key(path: Path) -> tuple:
    st = os.stat(path)
    return (str(path), st.st_mtime_ns, st.st_size)


class StepCache:
    """Open :class:`StepData` by (path, mtime, size), least recently used first out."""

    def __init__(self, capacity: int = 6) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, StepData] = OrderedDict()
        #: why a file could not be opened, or None, by (path, mtime, size): a file changes only by
        #: being replaced, so each version is opened once however often the run list is asked for
        self._problems: OrderedDict[tuple, str | None] = OrderedDict()

    def idle(self) -> bool:
        with self._lock:
            items = list(self._items.values())
        return all(d.idle() for d in items)

    def problem(self, path: Path) -> str | None:
        """Why the step file at ``path`` cannot be opened, or None when it can."""
        try:
            key = _key(path)
        except OSError as e:
            return f"{path}: {e.strerror or e}"
        with self._lock:
            if key in self._problems:
                return self._problems[key]
        try:
            StepReader(path).close()
            problem = None
        except StoreError as e:
            problem = str(e)
        with self._lock:
            self._problems[key] = problem
            while len(self._problems) > _PROBLEMS_KEPT:
                self._problems.popitem(last=False)
        return problem

    def get(self, path: Path) -> StepData:
        key = _key(path)
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
