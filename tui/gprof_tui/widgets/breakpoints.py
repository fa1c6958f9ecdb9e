"""The breakpoint list: every breakpoint the server holds, enabled or not, with its hits."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.widgets import ListItem, ListView, Static


def breakpoint_line(b: dict[str, Any]) -> str:
    """``[x] 2: once @head  hits 1`` plus what is wrong with it (a raising condition, no match)."""
    mark = "x" if b["enabled"] else " "
    extra = f"  ignore {b['ignore']} more" if b.get("ignore") else ""
    line = escape(f"[{mark}] {b['id']}: {b['spec']}  hits {b['hits']}{extra}")
    if b.get("error"):
        line += f"\n    [red]{escape(b['error'])}[/red]"
    if b.get("warning"):
        line += f"\n    [yellow]{escape(b['warning'])}[/yellow]"
    return line


class BreakpointList(ListView):
    """Redrawn from the server's list after each change, never edited locally, so it shows what
    the program will actually stop on."""

    DEFAULT_CSS = """
    BreakpointList { height: 6; border-left: solid $primary; border-top: solid $primary; }
    """

    def show(self, breakpoints: list[dict[str, Any]]) -> None:
        """Replace the entries with ``breakpoints`` (the protocol's breakpoint dicts)."""
        index = self.index
        self.clear()
        self.border_title = "breakpoints (b add, e on/off, E edit, Del delete)"
        for b in breakpoints:
            self.append(ListItem(Static(breakpoint_line(b))))
        if index is not None and breakpoints:
            self.index = min(index, len(breakpoints) - 1)

    def selected(self, breakpoints: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The entry of ``breakpoints`` under the cursor, if any."""
        i = self.index
        return breakpoints[i] if i is not None and 0 <= i < len(breakpoints) else None
