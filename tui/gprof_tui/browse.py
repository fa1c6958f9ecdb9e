"""Browse a recorded run: the screen that composes the module tree, node table, details,
analyses and memory widgets and routes their messages; the widgets live in ``widgets/``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from gprof.analyses.runner import TARGETS
from gprof.store import Run, StoreError, open_run
from gprof_tui.help import HelpScreen
from gprof_tui.messages import ModuleSelected, NodeHighlighted
from gprof_tui.stepdata import StepData
from gprof_tui.widgets.analyses import AnalysisText
from gprof_tui.widgets.details import NodeDetails
from gprof_tui.widgets.memory import MemoryView
from gprof_tui.widgets.module_tree import ModuleTree
from gprof_tui.widgets.node_table import NodeTable
from gprof_tui.widgets.suggestions import CompileSuggestions


class BrowseScreen(Screen):
    """One run, one (step, rank) at a time. ``on_break`` (set by the live debugger) receives the
    stable key of the node picked with ``b``; without it, ``b`` shows the ``--break`` to use."""

    BINDINGS = [
        Binding("question_mark", "help", "help"),
        Binding("slash", "filter", "filter"),
        Binding("escape", "clear_filter", "clear filter", show=False),
        Binding("o", "sort", "sort"),
        Binding("O", "reverse", "reverse", show=False),
        Binding("greater_than_sign", "page(1)", "next page"),
        Binding("less_than_sign", "page(-1)", "prev page", show=False),
        Binding("right_square_bracket", "step(1)", "next step"),
        Binding("left_square_bracket", "step(-1)", "prev step", show=False),
        Binding("right_curly_bracket", "rank(1)", "next rank"),
        Binding("left_curly_bracket", "rank(-1)", "prev rank", show=False),
        Binding("b", "breakpoint", "break here"),
        Binding("t", "target", "fusion target"),
        Binding("y", "copy_snippet", "copy snippet", show=False),
        Binding("q", "close", "quit"),
    ]
    DEFAULT_CSS = """
    #modules-box { width: 45%; }
    """

    def __init__(self, run: Run, step: int | None = None, rank: int | None = None,
                 on_break: Callable[[str], None] | None = None, target: str | None = None,
                 gpu: str | None = None) -> None:
        super().__init__()
        self.run = run
        self.on_break = on_break
        self.data = StepData(run, step, rank, target, gpu)
        self._built: set[str] = set()
        self._analyses: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            with TabPane("Graph", id="tab-graph"), Horizontal():
                with Vertical(id="modules-box"):
                    yield Static("modules: [green]forward time[/]  [magenta]backward time[/]  [yellow]allocated[/]")
                    yield ModuleTree(id="modules")
                with Vertical(id="right"):
                    yield NodeTable()
                    yield NodeDetails(id="details-box")
            # the other tabs are filled when first viewed (_build_tab): the first screen pays only for Graph
            yield TabPane("Unfused chains", id="tab-fusion")
            yield TabPane("Compile suggestions", id="tab-compile")
            yield TabPane("Hazards", id="tab-hazards")
            yield TabPane("Memory", id="tab-memory")
        yield Footer()

    def on_mount(self) -> None:
        self.load_step()

    @property
    def modules_ready(self) -> bool:
        """True once the module tree carries its totals (tests and the benchmark wait for it)."""
        return self.query_one(ModuleTree).ready

    def load_step(self) -> None:
        """Show ``self.data`` in every pane (the analysis tabs when next viewed)."""
        d = self.data
        status = "" if d.meta.complete else f"  INCOMPLETE: {d.meta.error}"
        self.title = f"torch-gprof  {self.run.name}"
        self.sub_title = (f"step {d.step}  rank {d.rank}/{d.meta.world_size}  {d.count():,} nodes  "
                          f"fusion: {_target_label(d.target, d.gpu)}{status}")
        self.query_one(ModuleTree).load(d)
        self.query_one(NodeTable).show_step(d)
        self._analyses = d.analyses()
        self._build_tab(self.query_one("#tabs", TabbedContent).active)

    def _build_tab(self, pane_id: str) -> None:
        if pane_id in self._built or pane_id == "tab-graph":
            return
        self._built.add(pane_id)
        self.query_one(f"#{pane_id}", TabPane).mount(self._tab_content(pane_id))

    def _tab_content(self, pane_id: str) -> Widget:
        if pane_id == "tab-compile":
            return CompileSuggestions(self._analyses.get("compile_suggestions"))
        if pane_id == "tab-memory":
            return MemoryView(self.data)
        name = pane_id.removeprefix("tab-")
        return AnalysisText(name, self._analyses.get(name))

    @on(TabbedContent.TabActivated)
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id is not None:
            self._build_tab(event.pane.id)

    @on(ModuleSelected)
    def _module(self, event: ModuleSelected) -> None:
        self.query_one(NodeTable).narrow(event.module)

    @on(NodeHighlighted)
    def _node(self, event: NodeHighlighted) -> None:
        self.query_one(NodeDetails).show(self.data, event.idx)

    # ------------------------------------------------------------------ actions
    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("browse"))

    def action_filter(self) -> None:
        self.query_one(NodeTable).open_filter()

    def action_clear_filter(self) -> None:
        self.query_one(NodeTable).clear_filter()

    def action_sort(self) -> None:
        self.query_one(NodeTable).cycle_sort()

    def action_reverse(self) -> None:
        self.query_one(NodeTable).reverse()

    def action_page(self, delta: int) -> None:
        self.query_one(NodeTable).page(delta)

    async def _switch(self, targets: list[tuple[int, int]]) -> None:
        """Open the first readable (step, rank) of ``targets``: one whose header does not decode is
        named in a notification and passed over, so one bad file never walls off the steps beyond
        it. When none reads, this step stays."""
        for step, rank in targets:
            try:
                data = StepData(self.run, step, rank, self.data.target, self.data.gpu)
                break
            except StoreError as e:
                self.notify(f"skipped step {step} rank {rank}: {e}", severity="error", timeout=10)
        else:
            return
        self.data.close()
        self.data = data
        await self._forget_tabs()
        self.load_step()

    async def _forget_tabs(self) -> None:
        """Empty the built tabs: each is rebuilt for what ``self.data`` now shows when next viewed."""
        for pane_id in self._built:
            await self.query_one(f"#{pane_id}", TabPane).remove_children()
        self._built = set()

    async def action_target(self) -> None:
        """Cycle the fusion target the analysis tabs predict for: as stored, then cpu, then cuda."""
        order: list[str | None] = [None, *TARGETS]
        d = self.data
        d.target = order[(order.index(d.target if d.gpu is None else "cuda") + 1) % len(order)]
        d.gpu = None
        await self._forget_tabs()
        self.load_step()
        self.notify(f"fusion target: {_target_label(d.target, d.gpu)}")

    @staticmethod
    def _onward(values: list[int], current: int, delta: int) -> list[int]:
        """The values after ``current`` in ``delta``'s direction, nearest first."""
        i = values.index(current) if current in values else -1 if delta > 0 else len(values)
        return values[i + 1:] if delta > 0 else values[:max(i, 0)][::-1]

    async def action_step(self, delta: int) -> None:
        steps = [f.step for f in self.run.files() if f.rank == self.data.rank]
        onward = self._onward(steps, self.data.step, delta)
        if not onward:
            self.notify(f"no {'later' if delta > 0 else 'earlier'} step; steps: {steps}")
            return
        await self._switch([(s, self.data.rank) for s in onward])

    async def action_rank(self, delta: int) -> None:
        ranks = [f.rank for f in self.run.files() if f.step == self.data.step]
        onward = self._onward(ranks, self.data.rank, delta)
        if not onward:
            self.notify(f"no other rank for step {self.data.step}; ranks: {ranks}")
            return
        await self._switch([(self.data.step, r) for r in onward])

    def selected_node_key(self) -> str | None:
        """The stable key of the node under the table's cursor (what ``b`` breaks on)."""
        idx = self.query_one(NodeTable).selected_idx()
        n = None if idx is None else self.data.node(idx)
        return None if n is None else n.key

    def action_breakpoint(self) -> None:
        key = self.selected_node_key()
        if key is None:
            bad = self.query_one(NodeTable).selected_undecoded()
            self.notify("select a node in the table first" if bad is None else
                        f"node {bad.idx} does not decode: pick another node", severity="warning")
            return
        if self.on_break is not None:
            self.on_break(key)
        else:
            self.app.copy_to_clipboard(key)
            self.notify(f"break on this node with:  torch-gprof debug SCRIPT --break '{key}'  (key copied)")

    def action_copy_snippet(self) -> None:
        shown = self.query(CompileSuggestions)
        text = shown.first().snippet if shown else ""
        if not text:
            self.notify("no snippet selected (Compile suggestions tab)", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify("snippet copied to the clipboard")

    def action_close(self) -> None:
        if self.on_break is not None:
            self.app.pop_screen()
        else:
            self.app.exit()

    def on_unmount(self) -> None:
        self.data.close()


def _target_label(target: str | None, gpu: str | None) -> str:
    if gpu is not None:
        return f"cuda ({gpu})"
    return target or "as recorded"


class BrowseApp(App):
    """``torch-gprof tui RUN``"""

    TITLE = "torch-gprof"

    def __init__(self, run: Run | str, step: int | None = None, rank: int | None = None,
                 target: str | None = None, gpu: str | None = None) -> None:
        super().__init__()
        self.run_obj = open_run(run) if isinstance(run, str) else run
        self._start: dict[str, Any] = {"step": step, "rank": rank, "target": target, "gpu": gpu}

    def on_mount(self) -> None:
        self.push_screen(BrowseScreen(self.run_obj, **self._start))
