"""The node table: one page of a step's nodes, with its filter box and status line."""
from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from gprof.graph.formatting import fmt_bytes, fmt_ns
from gprof.graph.model import Node
from gprof.store import StoreError
from gprof_tui.messages import NodeHighlighted
from gprof_tui.render import unreadable_text
from gprof_tui.stepdata import PAGE_SIZE, SORT_COLUMNS, NodeQuery, StepData, UndecodedNode

NODE_COLUMNS = ("idx", "op", "phase", "module", "time", "alloc", "live")
_SORT_KEYS = list(SORT_COLUMNS)
#: sorted largest first when first chosen: the expensive nodes are the ones looked for
_DESCENDING_FIRST = ("time", "alloc", "live", "flops")
#: how a row that does not decode is marked, in the table and in the notice above it
_BAD = "bold red"


def _clip(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _cells(n: Node | UndecodedNode) -> tuple[str | Text, ...]:
    if isinstance(n, UndecodedNode):  # what the row still says of itself (its op, as stored) and why it does not read
        return (Text(f"✗ {n.idx}", style=_BAD), Text(n.op or "?", style=_BAD),
                Text("-", style=_BAD), Text(_clip(f"row does not decode: {n.reason}"), style=_BAD), "", "", "")
    return (str(n.idx), n.op_short, n.phase, "-" if n.module is None else (n.module or "(root)"),
            fmt_ns(n.dur_ns), fmt_bytes(n.alloc_bytes), fmt_bytes(n.live_bytes))


def _undecoded_notice(bad: list[UndecodedNode]) -> str:
    """One line over a page with rows that do not decode: how many, the first one's file, index and
    reason, and what to do; the rows themselves are marked in the table."""
    first = bad[0]
    count = "1 row of this page does not" if len(bad) == 1 else f"{len(bad)} rows of this page do not"
    where = f"{first.error.path.name}, node {first.idx}: {_clip(first.reason, 60)}"
    return (f"[{_BAD}]✗ {count} decode[/] ({escape(where)}); the other rows show as usual. "
            "Re-record the step, or delete the file.")


class NodeTable(Vertical):
    """Holds the query (module, filter text, sort, offset) and reads only the page it shows, so a
    million-node step pages as fast as a small one. Announces the node under the cursor."""

    DEFAULT_CSS = """
    NodeTable #filter { display: none; }
    NodeTable #filter.shown { display: block; }
    NodeTable #status { height: 1; color: $text-muted; }
    NodeTable #nodes-error { display: none; height: auto; padding: 0 1; }
    NodeTable #nodes-error.shown { display: block; }
    NodeTable #nodes { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.node_query = NodeQuery()
        self._step: StepData | None = None
        self._page_nodes: list[int] = []
        #: the page's rows that do not decode, by node index: shown marked, never opened
        self._undecoded: dict[int, UndecodedNode] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: op, module, key or source (Enter applies, Esc clears)", id="filter")
        yield Static("", id="status")
        yield Static("", id="nodes-error")
        yield DataTable(id="nodes", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#nodes", DataTable).add_columns(*NODE_COLUMNS)

    def show_step(self, data: StepData) -> None:
        """The first page of another step, keeping the module, filter and sort."""
        self._step = data
        self.node_query.offset = 0
        self.reload()

    def reload(self) -> None:
        """Read and show the page the query names. A row that does not decode keeps its place as a
        marked placeholder (a one-line notice above says so) and the page's other rows show as usual;
        only a page none of whose rows decode is replaced by the store's message."""
        data, q = self._step, self.node_query
        if data is None:
            return
        table = self.query_one("#nodes", DataTable)
        table.clear()
        self._page_nodes, self._undecoded = [], {}
        error = self.query_one("#nodes-error", Static)
        try:
            nodes = data.page_rows(q)
            matching = data.count_matching(q) if q.text or q.module is not None else data.count()
        except StoreError as e:  # the header read, these rows do not: say so here, the other panes go on
            self._unreadable(e)
            return
        bad = [n for n in nodes if isinstance(n, UndecodedNode)]
        if bad and len(bad) == len(nodes):  # none of the page decodes: the store's message in its stead
            self._unreadable(bad[0].error)
            return
        if bad:
            error.update(_undecoded_notice(bad))
            error.add_class("shown")
        else:
            error.remove_class("shown")
        self._page_nodes = [n.idx for n in nodes]
        self._undecoded = {n.idx: n for n in bad}
        table.add_rows([_cells(n) for n in nodes])
        scope = "all modules" if q.module is None else f"module {q.module or '(root)'}"
        filt = f"  filter '{q.text}'" if q.text else ""
        order = f"{q.sort} {'desc' if q.descending else 'asc'}"
        total = data.count()
        rows = f"rows {q.offset + 1:,}-{q.offset + len(nodes):,}" if nodes else "no rows"
        head = (f"{matching:,} of {total:,} match, {rows}" if matching != total else
                f"{rows} of {total:,}")
        self.query_one("#status", Static).update(escape(f"{head}  ({scope}{filt}, sorted by {order})"))
        self.post_message(NodeHighlighted(nodes[0].idx if nodes else None))

    def _unreadable(self, e: StoreError) -> None:
        error = self.query_one("#nodes-error", Static)
        error.update(unreadable_text("This page of nodes", e))
        error.add_class("shown")
        self.query_one("#status", Static).update("no rows: the step file's node rows do not decode")
        self.post_message(NodeHighlighted(None))

    def selected_idx(self) -> int | None:
        """The node under the cursor, if the page has one there that decodes."""
        row = self.query_one("#nodes", DataTable).cursor_row
        idx = self._page_nodes[row] if 0 <= row < len(self._page_nodes) else None
        return None if idx in self._undecoded else idx

    def selected_undecoded(self) -> UndecodedNode | None:
        """The row under the cursor when it is one that does not decode."""
        row = self.query_one("#nodes", DataTable).cursor_row
        return self._undecoded.get(self._page_nodes[row]) if 0 <= row < len(self._page_nodes) else None

    # ------------------------------------------------------------------ query changes
    def narrow(self, module: str | None) -> None:
        """Only ``module`` and its submodules (``None``: every node)."""
        self.node_query.module = module
        self._restart()

    def open_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.node_query.text = ""
        self._restart()
        self.query_one("#nodes", DataTable).focus()

    def cycle_sort(self) -> None:
        q = self.node_query
        q.sort = _SORT_KEYS[(_SORT_KEYS.index(q.sort) + 1) % len(_SORT_KEYS)]
        q.descending = q.sort in _DESCENDING_FIRST
        self._restart()

    def reverse(self) -> None:
        self.node_query.descending = not self.node_query.descending
        self._restart()

    def page(self, delta: int) -> None:
        """Move ``delta`` pages; past the last one says so instead."""
        if delta > 0 and len(self._page_nodes) < PAGE_SIZE:
            self.notify("this is the last page")
            return
        self.node_query.offset = max(0, self.node_query.offset + delta * PAGE_SIZE)
        self.reload()

    def _restart(self) -> None:
        self.node_query.offset = 0
        self.reload()

    # ------------------------------------------------------------------ events
    @on(DataTable.RowHighlighted, "#nodes")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        # a row that does not decode is announced too: the details pane then says why it cannot show it
        if 0 <= event.cursor_row < len(self._page_nodes):
            self.post_message(NodeHighlighted(self._page_nodes[event.cursor_row]))

    @on(DataTable.HeaderSelected, "#nodes")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        label = str(event.label)
        q = self.node_query
        q.descending = not q.descending if q.sort == label else label in _DESCENDING_FIRST
        q.sort = label
        self._restart()

    @on(Input.Submitted, "#filter")
    def _filter(self, event: Input.Submitted) -> None:
        self.node_query.text = event.value.strip()
        self._restart()
        self.query_one("#nodes", DataTable).focus()
