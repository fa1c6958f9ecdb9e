"""The details pane: everything about one node, and the nodes around it."""
from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gprof.graph.model import Node
from gprof.store import CorruptStepError, StoreError
from gprof_tui.render import node_details, unreadable_text
from gprof_tui.stepdata import StepData, UndecodedNode


class NodeDetails(VerticalScroll):
    """Scrolls, because a node with many inputs or partners outgrows its fixed height."""

    DEFAULT_CSS = """
    NodeDetails { height: 14; border-top: solid $primary; }
    """

    def compose(self) -> ComposeResult:
        yield Static("select a node", id="details")

    def show(self, data: StepData, idx: int | None) -> None:
        """Node ``idx``'s inputs, outputs, partners and neighbours (a few point lookups);
        ``None``: no node is selected."""
        body = self.query_one("#details", Static)
        if idx is None:
            body.update("select a node")
            return
        try:
            n = data.node(idx)
            if n is None:
                return
            partner, partner_problem = _partner(data, n.fwd)
            producers, consumers = data.neighbours(idx)
            text = node_details(n, partner, data.backward_partners(idx) if n.phase == "forward" else [],
                                data.brief(producers[:8]), data.brief(consumers[:8])) + partner_problem
        except StoreError as e:  # this node does not decode, or the file around it does not read
            text = unreadable_text(f"Node {idx}", e)
        body.update(text)


def _partner(data: StepData, fwd: int | None) -> tuple[Node | None, str]:
    """A node's forward partner and ""; when the partner's row does not decode, None and a line saying
    so, and the node itself still shows."""
    if fwd is None:
        return None, ""
    try:
        return data.node(fwd), ""
    except CorruptStepError as e:
        reason = UndecodedNode(fwd, None, e).reason
        return None, f"\n[b]forward partner[/b]  #{fwd} [b red]does not decode[/b red] ({escape(reason)})"
