"""What the terminal UI shows of one stored step, read through ``gprof.store`` only.

Every query is paged or aggregated inside SQLite, so a million-node step opens as fast as a small
one: the first screen is one ``LIMIT`` query and one ``GROUP BY`` over modules.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gprof.analyses.items import SNIPPET_FIELDS
from gprof.graph.model import Node
from gprof.report import module_table
from gprof.store import Run, StepReader
from gprof.store.step_file import NODE_COLUMNS, row_to_node

PAGE_SIZE = 200

#: sortable node-table columns: label -> SQL column
SORT_COLUMNS = {"idx": "idx", "op": "op", "phase": "phase", "module": "module", "time": "dur_ns",
                "alloc": "alloc_bytes", "live": "live_bytes", "flops": "flops"}



@dataclass
class NodeQuery:
    """Filter, sort and page of the node table."""

    text: str = ""
    module: str | None = None  # None: every node; "": the root and everything inside it
    sort: str = "idx"
    descending: bool = False
    offset: int = 0


class StepData:
    def __init__(self, run: Run, step: int | None = None, rank: int | None = None) -> None:
        self.run = run
        f = run.file(step, rank)
        self.step, self.rank, self.path = f.step, f.rank, f.path
        self.reader = StepReader(f.path)
        self.meta = self.reader.meta
        self.memory = self.reader.memory

    def close(self) -> None:
        self.reader.close()

    # ------------------------------------------------------------------ nodes
    def _where(self, q: NodeQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if q.module:
            clauses.append("(module = ? OR (module >= ? AND module < ?))")  # '.' + 1 == '/'
            params += [q.module, q.module + ".", q.module + "/"]
        elif q.module == "":
            clauses.append("module IS NOT NULL")
        if q.text:
            like = f"%{q.text}%"
            clauses.append("(op LIKE ? OR module LIKE ? OR key LIKE ? OR source LIKE ?)")
            params += [like] * 4
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def page(self, q: NodeQuery, size: int = PAGE_SIZE) -> list[Node]:
        where, params = self._where(q)
        col = SORT_COLUMNS[q.sort]
        order = f"{col} {'DESC' if q.descending else 'ASC'}" + (", idx" if col != "idx" else "")
        rows = self.reader.sql(
            f"SELECT {', '.join(NODE_COLUMNS)} FROM nodes{where} ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, size, q.offset))
        return [row_to_node(r, self.rank) for r in rows]

    def count(self) -> int:
        return self.meta.node_count or self.reader.count()

    def node(self, idx: int) -> Node | None:
        return self.reader.node(idx)

    def backward_partners(self, idx: int) -> list[tuple[int, str]]:
        return [(i, op) for i, op in self.reader.sql("SELECT idx, op FROM nodes WHERE fwd = ? ORDER BY idx LIMIT 20", (idx,))]

    def neighbours(self, idx: int) -> tuple[list[int], list[int]]:
        """(producers, consumers) of a node."""
        edges = self.reader.edges(idx)
        return (sorted({e.src for e in edges if e.dst == idx}), sorted({e.dst for e in edges if e.src == idx}))

    def brief(self, idxs: list[int]) -> dict[int, tuple[str, str | None]]:
        if not idxs:
            return {}
        marks = ",".join("?" * len(idxs))
        return {i: (op, mod) for i, op, mod in self.reader.sql(
            f"SELECT idx, op, module FROM nodes WHERE idx IN ({marks})", tuple(idxs))}

    # ------------------------------------------------------------------ modules, memory, analyses
    # Whole-step aggregations scan every row (seconds on a million nodes). Views run them on a
    # worker thread, each on its own connection, so paging stays instant meanwhile.
    def module_names(self) -> list[str]:
        """The recorded module names: instant, for the tree before its totals arrive."""
        return sorted(self.reader.modules())

    def modules(self) -> list[dict[str, Any]]:
        """Inclusive per-module time and allocation, aggregated in SQL (gprof.report.module_table)."""
        with StepReader(self.path) as r:
            return module_table(r)

    def memory_series(self, buckets: int = 120) -> list[int]:
        """Max live bytes per bucket of consecutive nodes, downsampled in SQL."""
        n = self.count()
        if n == 0:
            return []
        width = max(1, -(-n // buckets))
        with StepReader(self.path) as r:
            rows = r.sql("SELECT idx / ?, MAX(live_bytes) FROM nodes GROUP BY idx / ? ORDER BY 1", (width, width))
        return [v or 0 for _, v in rows]

    def analyses(self) -> dict[str, Any]:
        return self.reader.analyses()


def item_title(item: dict[str, Any]) -> str:
    """One line naming an analysis item: its scalar fields, short first."""
    fields = [(k, v) for k, v in item.items()
              if isinstance(v, (str, int, float)) and not isinstance(v, bool) and k not in SNIPPET_FIELDS]
    fields.sort(key=lambda kv: len(str(kv[1])))
    return "  ".join(f"{k}={v}" for k, v in fields[:6]) or "(item)"
