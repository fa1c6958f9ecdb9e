"""The details pane: everything about one node, and the nodes around it."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gprof.store import StoreError
from gprof_tui.render import node_details, unreadable_text
from gprof_tui.stepdata import StepData


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
            partner = data.node(n.fwd) if n.fwd is not None else None
            producers, consumers = data.neighbours(idx)
            text = node_details(n, partner, data.backward_partners(idx) if n.phase == "forward" else [],
                                data.brief(producers[:8]), data.brief(consumers[:8]))
        except StoreError as e:  # this node, or its partner, does not decode
            text = unreadable_text(f"Node {idx}", e)
        body.update(text)
