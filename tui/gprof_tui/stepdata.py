"""What the terminal UI shows of one stored step, read through ``gprof.store`` only.

Every query is paged or aggregated inside SQLite, so a million-node step opens as fast as a small
one: the first screen is one ``LIMIT`` query and one ``GROUP BY`` over modules.
"""
from __future__ import annotations

from typing import Any

from gprof.analyses.items import SNIPPET_FIELDS
from gprof.analyses.runner import TARGETED
from gprof.graph.model import Node
from gprof.store import Run, StepReader
from gprof.store.queries import (
    NodeQuery,
    UndecodedNode,
    backward_partners,
    memory_series,
    module_table,
    neighbours,
    node_briefs,
    node_page_rows,
)
from gprof.store.queries.nodes import SORT_COLUMNS, count_matching
from gprof.store.queries.retarget import NeedsTorchError, analyses_for

PAGE_SIZE = 200
#: the node table's paging, sorting and undecodable rows are the read layer's; re-exported for the widgets
__all__ = ["PAGE_SIZE", "SORT_COLUMNS", "NodeQuery", "StepData", "UndecodedNode", "item_title"]


class StepData:
    """One (step, rank) of a run. ``target``/``gpu`` re-target the fusion-dependent analyses
    (gprof/store/queries/retarget.py); None shows what was stored at capture."""

    def __init__(self, run: Run, step: int | None = None, rank: int | None = None,
                 target: str | None = None, gpu: str | None = None) -> None:
        self.run = run
        self.target, self.gpu = target, gpu
        f = run.file(step, rank)
        self.step, self.rank, self.path = f.step, f.rank, f.path
        self.reader = StepReader(f.path)
        self.meta = self.reader.meta
        self.memory = self.reader.memory

    def close(self) -> None:
        self.reader.close()

    # ------------------------------------------------------------------ nodes
    def page_rows(self, q: NodeQuery, size: int = PAGE_SIZE) -> list[Node | UndecodedNode]:
        """One page of the nodes ``q`` matches, a row that does not decode as an UndecodedNode in its place."""
        return node_page_rows(self.reader, q, size)

    def count(self) -> int:
        return self.meta.node_count or self.reader.count()

    def count_matching(self, q: NodeQuery) -> int:
        return count_matching(self.reader, q)

    def node(self, idx: int) -> Node | None:
        return self.reader.node(idx)

    def backward_partners(self, idx: int) -> list[tuple[int, str]]:
        return backward_partners(self.reader, idx, 20)

    def neighbours(self, idx: int) -> tuple[list[int], list[int]]:
        """(producers, consumers) of a node."""
        return neighbours(self.reader, idx)

    def brief(self, idxs: list[int]) -> dict[int, tuple[str, str | None]]:
        return {i: (op, mod) for i, op, mod, _ in node_briefs(self.reader, idxs)}

    # ------------------------------------------------------------------ modules, memory, analyses
    # Whole-step aggregations scan every row (seconds on a million nodes). Views run them on a
    # worker thread, each on its own connection, so paging stays instant meanwhile.
    def module_names(self) -> list[str]:
        """The recorded module names: instant, for the tree before its totals arrive."""
        return sorted(self.reader.modules())

    def modules(self) -> list[dict[str, Any]]:
        """Inclusive per-module time and allocation, aggregated in SQL (on this thread's own connection)."""
        with StepReader(self.path) as r:
            return module_table(r)

    def memory_series(self, buckets: int = 120) -> list[int]:
        """Max live bytes per bucket of consecutive nodes, downsampled in SQL."""
        with StepReader(self.path) as r:
            return memory_series(r, buckets)

    def analyses(self) -> dict[str, Any]:
        """The stored analyses, re-targeted when a target or GPU is set. A step that cannot be
        re-targeted without torch keeps its other analyses; the re-targeted ones say why."""
        if self.target is None and self.gpu is None:
            return self.reader.analyses()
        try:
            return analyses_for(self.reader, self.target, self.gpu)
        except NeedsTorchError as e:
            stored = self.reader.analyses()
            return {**stored, **{name: {"error": str(e)} for name in TARGETED}}


def item_title(item: dict[str, Any]) -> str:
    """One line naming an analysis item: its scalar fields, short first."""
    fields = [(k, v) for k, v in item.items()
              if isinstance(v, (str, int, float)) and not isinstance(v, bool) and k not in SNIPPET_FIELDS]
    fields.sort(key=lambda kv: len(str(kv[1])))
    return "  ".join(f"{k}={v}" for k, v in fields[:6]) or "(item)"
