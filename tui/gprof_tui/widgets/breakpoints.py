"""The breakpoint list: every breakpoint the server holds, enabled or not, with its hits."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.widgets import ListItem, ListView, Static


class BreakpointList(ListView):
    """Redrawn from the server's list after each change, never edited locally, so it shows what
    the program will actually stop on."""

    DEFAULT_CSS = """
    BreakpointList { height: 10; border-left: solid $primary; border-top: solid $primary; }
    """

    def show(self, breakpoints: list[dict[str, Any]]) -> None:
        """Replace the entries with ``breakpoints`` (the protocol's breakpoint dicts)."""
        self.clear()
        self.border_title = "breakpoints (b add, d/e disable/enable)"
        for b in breakpoints:
            mark = "x" if b["enabled"] else " "
            self.append(ListItem(Static(escape(f"[{mark}] {b['id']}: {b['spec']}  hits {b['hits']}"))))

    def selected(self, breakpoints: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The entry of ``breakpoints`` under the cursor, if any."""
        i = self.index
        return breakpoints[i] if i is not None and 0 <= i < len(breakpoints) else None
