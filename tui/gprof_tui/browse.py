"""Browse a recorded run: module tree, paged node table, details, analyses tabs, memory plot."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    ListItem,
    ListView,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
    Tree,
)

from gprof.analyses.items import analysis_items, item_snippet
from gprof.graph.formatting import fmt_bytes, fmt_ns
from gprof.store import Run, open_run
from gprof_tui.help import HelpScreen
from gprof_tui.render import module_label, node_details
from gprof_tui.stepdata import PAGE_SIZE, SORT_COLUMNS, NodeQuery, StepData, item_title

NODE_COLUMNS = ("idx", "op", "phase", "module", "time", "alloc", "live")
_SORT_KEYS = list(SORT_COLUMNS)


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
        Binding("y", "copy_snippet", "copy snippet", show=False),
        Binding("q", "close", "quit"),
    ]

    def __init__(self, run: Run, step: int | None = None, rank: int | None = None,
                 on_break: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.run = run
        self.on_break = on_break
        self.data = StepData(run, step, rank)
        self.query_state = NodeQuery()
        self._page_nodes: list[int] = []
        self._snippets: list[str] = []
        self._built: set[str] = set()
        self._analyses: dict[str, Any] = {}
        #: True once the module tree carries its totals (tests and the benchmark wait for it)
        self.modules_ready = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            with TabPane("Graph", id="tab-graph"), Horizontal():
                with Vertical(id="modules-box"):
                    yield Static("modules: [green]forward time[/]  [magenta]backward time[/]  [yellow]allocated[/]")
                    yield Tree("(root)", id="modules")
                with Vertical(id="right"):
                    yield Input(placeholder="filter: op, module, key or source (Enter applies, Esc clears)",
                                id="filter")
                    yield Static("", id="status")
                    yield DataTable(id="nodes", cursor_type="row", zebra_stripes=True)
                    with VerticalScroll(id="details-box"):
                        yield Static("select a node", id="details")
            # the other tabs are filled when first viewed (_build_tab): the first screen pays only for Graph
            yield TabPane("Unfused chains", id="tab-fusion")
            yield TabPane("Compile suggestions", id="tab-compile")
            yield TabPane("Hazards", id="tab-hazards")
            yield TabPane("Memory", id="tab-memory")
        yield Footer()

    DEFAULT_CSS = """
    #modules-box { width: 45%; }
    #filter { display: none; }
    #filter.shown { display: block; }
    #status { height: 1; color: $text-muted; }
    #nodes { height: 1fr; }
    #details-box { height: 14; border-top: solid $primary; }
    #suggestions { width: 40%; }
    #memplot { height: 10; margin: 1 2; }
    """

    def on_mount(self) -> None:
        table = self.query_one("#nodes", DataTable)
        table.add_columns(*NODE_COLUMNS)
        self.load_step()

    # ------------------------------------------------------------------ loading
    def load_step(self) -> None:
        d = self.data
        status = "" if d.meta.complete else f"  INCOMPLETE: {d.meta.error}"
        self.title = f"torch-gprof  {self.run.name}"
        self.sub_title = f"step {d.step}  rank {d.rank}/{d.meta.world_size}  {d.count():,} nodes{status}"
        self.query_state.offset = 0
        self.load_modules()
        self.load_nodes()
        self._analyses = self.data.analyses()
        self._build_tab(self.query_one("#tabs", TabbedContent).active)

    def load_modules(self) -> None:
        """The tree from the module list at once; its time and memory bars when the SQL
        aggregation (a worker thread) finishes."""
        self._fill_tree({name: None for name in ["", *self.data.module_names()]})
        self.call_after_refresh(self._aggregate, self.data)  # the first screen paints before the scan

    @work(thread=True, exclusive=True, group="modules")
    def _aggregate(self, data: StepData) -> None:
        rows = {e["module"]: e for e in data.modules()}
        if data is self.data:
            self.app.call_from_thread(self._fill_tree, rows)

    def _fill_tree(self, rows: dict[str, dict[str, Any] | None]) -> None:
        tree = self.query_one("#modules", Tree)
        tree.clear()
        root = rows.get("")
        total = {"fwd": root["forward_ns"] if root else 0, "bwd": root["backward_ns"] if root else 0,
                 "mem": root["alloc_bytes"] if root else 0}

        def label(name: str) -> str:
            e = rows.get(name)
            short = name.rsplit(".", 1)[-1] if name else "(root)"
            return module_label(name, e, total) if e else f"{escape(short)}  [dim](totals loading...)[/]"

        tree.root.data = ""
        tree.root.set_label(label(""))
        nodes = {"": tree.root}
        for name in sorted(n for n in rows if n):
            parent = nodes.get(name.rpartition(".")[0], tree.root)
            nodes[name] = parent.add(label(name), data=name, expand=name.count(".") < 1)
        tree.root.expand()
        self.modules_ready = root is not None

    def load_nodes(self) -> None:
        q = self.query_state
        nodes = self.data.page(q)
        table = self.query_one("#nodes", DataTable)
        table.clear()
        self._page_nodes = [n.idx for n in nodes]
        table.add_rows([(str(n.idx), n.op_short, n.phase, "-" if n.module is None else (n.module or "(root)"),
                         fmt_ns(n.dur_ns), fmt_bytes(n.alloc_bytes), fmt_bytes(n.live_bytes)) for n in nodes])
        scope = "all modules" if q.module is None else f"module {q.module or '(root)'}"
        filt = f"  filter '{q.text}'" if q.text else ""
        order = f"{q.sort} {'desc' if q.descending else 'asc'}"
        self.query_one("#status", Static).update(escape(
            f"rows {q.offset:,}-{q.offset + len(nodes):,} of {self.data.count():,}  ({scope}{filt}, sorted by {order})"))
        if nodes:
            self.show_node(nodes[0].idx)

    def show_node(self, idx: int) -> None:
        d = self.data
        n = d.node(idx)
        if n is None:
            return
        partner = d.node(n.fwd) if n.fwd is not None else None
        producers, consumers = d.neighbours(idx)
        self.query_one("#details", Static).update(node_details(
            n, partner, d.backward_partners(idx) if n.phase == "forward" else [],
            d.brief(producers[:8]), d.brief(consumers[:8])))

    def _build_tab(self, pane_id: str) -> None:
        if pane_id in self._built or pane_id == "tab-graph":
            return
        self._built.add(pane_id)
        raw = self._analyses
        pane = self.query_one(f"#{pane_id}", TabPane)
        if pane_id in ("tab-fusion", "tab-hazards"):
            name = pane_id.removeprefix("tab-")
            pane.mount(VerticalScroll(Static(self._analysis_text(name, raw.get(name)), id=name)))
        elif pane_id == "tab-compile":
            value = raw.get("compile_suggestions")
            items = analysis_items(value)
            self._snippets = [item_snippet(i) or "" for i in items]
            entries = [ListItem(Static(escape(f"{i + 1}. {item_title(item)}"))) for i, item in enumerate(items)]
            pane.mount(Horizontal(
                ListView(*(entries or [ListItem(Static(self._analysis_text("compile_suggestions", value)))]),
                         id="suggestions"),
                TextArea(self._snippets[0] if self._snippets else "", id="snippet", read_only=True, language=None)))
        elif pane_id == "tab-memory":
            plot = Sparkline([], id="memplot")
            pane.mount_all([plot, Static(self._memory_text(), id="memtext")])
            self._plot_memory(self.data, plot)  # one scan, only when looked at

    @staticmethod
    def _analysis_text(name: str, value: Any) -> str:
        if value is None:
            return f"No {name.replace('_', ' ')} for this step (the analysis did not run or found none)."
        if isinstance(value, dict) and set(value) == {"error"}:
            return f"The {name} analysis failed: {escape(str(value['error']))}"
        items = analysis_items(value)
        if not items:
            return f"No {name.replace('_', ' ')} found in this step."
        lines = []
        for i, item in enumerate(items, 1):
            lines.append(f"[b]{i}.[/b] {escape(item_title(item))}")
            for k, v in item.items():
                if isinstance(v, list) and v and len(v) <= 40:
                    lines.append(f"     {escape(k)}: {escape(', '.join(map(str, v)))}")
        return "\n".join(lines)

    def _memory_text(self) -> str:
        m = self.data.memory
        cats = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in sorted(m.by_category.items(), key=lambda kv: -kv[1]))
        saved = ", ".join(f"{k or '(root)'} {fmt_bytes(v)}" for k, v in
                          sorted(m.saved_activations.items(), key=lambda kv: -kv[1])[:8])
        return escape(
            f"live bytes over the step (max per bucket of nodes)\npeak {fmt_bytes(m.peak_bytes)} at node {m.peak_node}"
            f"\nat the peak: {cats or '-'}\nsaved for backward: {saved or '-'}")

    @on(TabbedContent.TabActivated)
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id is not None:
            self._build_tab(event.pane.id)

    @work(thread=True, exclusive=True, group="memory")
    def _plot_memory(self, data: StepData, plot: Sparkline) -> None:
        series = data.memory_series()
        if data is self.data:
            self.app.call_from_thread(setattr, plot, "data", series)

    # ------------------------------------------------------------------ events
    @on(DataTable.RowHighlighted, "#nodes")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self._page_nodes):
            self.show_node(self._page_nodes[event.cursor_row])

    @on(DataTable.HeaderSelected, "#nodes")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        label = str(event.label)
        q = self.query_state
        q.descending = not q.descending if q.sort == label else label in ("time", "alloc", "live", "flops")
        q.sort, q.offset = label, 0
        self.load_nodes()

    @on(Tree.NodeSelected, "#modules")
    def _module(self, event: Tree.NodeSelected) -> None:
        self.query_state.module = event.node.data if event.node.data else None
        self.query_state.offset = 0
        self.load_nodes()

    @on(Input.Submitted, "#filter")
    def _filter(self, event: Input.Submitted) -> None:
        self.query_state.text = event.value.strip()
        self.query_state.offset = 0
        self.load_nodes()
        self.query_one("#nodes", DataTable).focus()

    @on(ListView.Highlighted, "#suggestions")
    def _suggestion(self, event: ListView.Highlighted) -> None:
        i = event.list_view.index
        if i is not None and i < len(self._snippets):
            self.query_one("#snippet", TextArea).text = self._snippets[i]

    # ------------------------------------------------------------------ actions
    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("browse"))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.query_state.text = ""
        self.query_state.offset = 0
        self.load_nodes()
        self.query_one("#nodes", DataTable).focus()

    def action_sort(self) -> None:
        q = self.query_state
        q.sort = _SORT_KEYS[(_SORT_KEYS.index(q.sort) + 1) % len(_SORT_KEYS)]
        q.descending = q.sort in ("time", "alloc", "live", "flops")
        q.offset = 0
        self.load_nodes()

    def action_reverse(self) -> None:
        self.query_state.descending = not self.query_state.descending
        self.query_state.offset = 0
        self.load_nodes()

    def action_page(self, delta: int) -> None:
        q = self.query_state
        new = max(0, q.offset + delta * PAGE_SIZE)
        if delta > 0 and len(self._page_nodes) < PAGE_SIZE:
            self.notify("this is the last page")
            return
        q.offset = new
        self.load_nodes()

    async def _switch(self, step: int | None, rank: int | None) -> None:
        self.data.close()
        self.data = StepData(self.run, step, rank)
        for pane_id in self._built:  # rebuilt for the new step when viewed
            await self.query_one(f"#{pane_id}", TabPane).remove_children()
        self._built = set()
        self.load_step()

    async def action_step(self, delta: int) -> None:
        steps = [f.step for f in self.run.files() if f.rank == self.data.rank]
        i = steps.index(self.data.step) + delta if self.data.step in steps else 0
        if not 0 <= i < len(steps):
            self.notify(f"no {'later' if delta > 0 else 'earlier'} step; steps: {steps}")
            return
        await self._switch(steps[i], self.data.rank)

    async def action_rank(self, delta: int) -> None:
        ranks = [f.rank for f in self.run.files() if f.step == self.data.step]
        i = ranks.index(self.data.rank) + delta if self.data.rank in ranks else 0
        if not 0 <= i < len(ranks):
            self.notify(f"no other rank for step {self.data.step}; ranks: {ranks}")
            return
        await self._switch(self.data.step, ranks[i])

    def selected_node_key(self) -> str | None:
        table = self.query_one("#nodes", DataTable)
        row = table.cursor_row
        if not 0 <= row < len(self._page_nodes):
            return None
        n = self.data.node(self._page_nodes[row])
        return None if n is None else n.key

    def action_breakpoint(self) -> None:
        key = self.selected_node_key()
        if key is None:
            self.notify("select a node in the table first", severity="warning")
            return
        if self.on_break is not None:
            self.on_break(key)
        else:
            self.app.copy_to_clipboard(key)
            self.notify(f"break on this node with:  torch-gprof debug SCRIPT --break '{key}'  (key copied)")

    def action_copy_snippet(self) -> None:
        text = self.query_one("#snippet", TextArea).text if "tab-compile" in self._built else ""
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


class BrowseApp(App):
    """``torch-gprof tui RUN``"""

    TITLE = "torch-gprof"

    def __init__(self, run: Run | str, step: int | None = None, rank: int | None = None) -> None:
        super().__init__()
        self.run_obj = open_run(run) if isinstance(run, str) else run
        self._start = (step, rank)

    def on_mount(self) -> None:
        self.push_screen(BrowseScreen(self.run_obj, *self._start))
