"""The module tree: each module's forward time, backward time and allocated bytes as bars."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import on, work
from textual.widgets import Tree

from gprof.store import StoreError
from gprof_tui.messages import ModuleSelected
from gprof_tui.render import module_label
from gprof_tui.stepdata import StepData


class ModuleTree(Tree[str]):
    """Drawn at once from the module names; the totals follow when the whole-step aggregation
    (seconds on a million nodes) finishes on a worker thread, so the first screen never waits."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("(root)", id=id)
        self._step: StepData | None = None
        #: True once the labels carry their totals (tests and the benchmark wait for it)
        self.ready = False
        #: why the totals could not be read, if they could not
        self.error: str | None = None

    def load(self, data: StepData) -> None:
        """Show the modules of ``data``; the totals arrive later."""
        self._step = data
        self.error = None
        self._fill({name: None for name in ["", *data.module_names()]})
        self.call_after_refresh(self._aggregate, data)  # the first screen paints before the scan

    @work(thread=True, exclusive=True, group="modules")
    def _aggregate(self, data: StepData) -> None:
        try:
            rows = {e["module"]: e for e in data.modules()}
        except StoreError as e:  # on this thread it would end the app: the tree says it instead
            if data is self._step:
                self.app.call_from_thread(self._unreadable, e)
            return
        if data is self._step:
            self.app.call_from_thread(self._fill, rows)

    def _unreadable(self, error: StoreError) -> None:
        """The names stay; the root says why the totals never come."""
        self.error = str(error)
        self.root.set_label(f"(root)  [b red]module totals cannot be read:[/] {escape(self.error)}")

    def _fill(self, rows: dict[str, dict[str, Any] | None]) -> None:
        self.clear()
        root = rows.get("")
        total = {"fwd": root["forward_ns"] if root else 0, "bwd": root["backward_ns"] if root else 0,
                 "mem": root["alloc_bytes"] if root else 0}

        def label(name: str) -> str:
            e = rows.get(name)
            short = name.rsplit(".", 1)[-1] if name else "(root)"
            return module_label(name, e, total) if e else f"{escape(short)}  [dim](totals loading...)[/]"

        self.root.data = ""
        self.root.set_label(label(""))
        nodes = {"": self.root}
        for name in sorted(n for n in rows if n):
            parent = nodes.get(name.rpartition(".")[0], self.root)
            nodes[name] = parent.add(label(name), data=name, expand=name.count(".") < 1)
        self.root.expand()
        self.ready = root is not None

    @on(Tree.NodeSelected)
    def _selected(self, event: Tree.NodeSelected[str]) -> None:
        self.post_message(ModuleSelected(event.node.data or None))
