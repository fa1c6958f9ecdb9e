"""The stack pane: the user's frames at the pause, innermost first."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gprof_tui.render import stack_text


class StackView(VerticalScroll):
    """Only the user's frames (the debug server drops torch's and ours), so the line that issued
    the op is at the top."""

    DEFAULT_CSS = """
    StackView { height: 1fr; border-left: solid $primary; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="stack")

    def show(self, p: dict[str, Any] | None) -> None:
        """The stack of pause ``p``; ``None`` empties the pane."""
        text = "" if p is None else "[b]user stack[/b] (innermost first)\n" + stack_text(p)
        self.query_one("#stack", Static).update(text)
