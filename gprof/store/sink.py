"""What a step is written into, as the capture layer sees it.

The builder streams nodes and edges while the step is still running (a million-node step never
sits in memory as objects); the pipeline adds the step-level parts and commits. Capture depends on
this protocol only, so a sink other than the SQLite :class:`gprof.store.step_file.StepWriter`
(an in-memory one in a test, a network one) plugs in without capture importing the store.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from gprof.graph.model import Edge, MemorySummary, ModuleInfo, Node, StepMeta


class NodeSink(Protocol):
    """Receives a step's nodes and edges as they are built, in chunks."""

    def add_nodes(self, nodes: Iterable[Node]) -> None: ...

    def add_edges(self, edges: Iterable[Edge]) -> None: ...

    def bump_live_bytes(self, start: int, stop: int, nbytes: int) -> None:
        """Add ``nbytes`` to the live bytes of nodes [start, stop): storages found, after those
        nodes were streamed, to have existed since the step began."""
        ...


class StepSink(NodeSink, Protocol):
    """A whole step: the streamed nodes, then the step-level parts, then commit (or abort)."""

    def set_modules(self, modules: Iterable[ModuleInfo]) -> None: ...

    def set_analysis(self, name: str, value: Any) -> None: ...

    def set_aggregates(self, aggregates: dict[str, list[int]]) -> None: ...

    def commit(self, meta: StepMeta, memory: MemorySummary) -> Path | None:
        """Make the step visible to readers all at once; returns where it went, if anywhere."""
        ...

    def abort(self) -> None:
        """Drop everything written for this step."""
        ...
