"""The stack pane: the user's frames at the pause, innermost first, the selected one marked."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class StackView(VerticalScroll):
    """Only the user's frames (the debug server drops torch's and ours), so the line that issued
    the op is at the top; ``u`` / ``d`` move the marker (and the source pane, and ``x``)."""

    DEFAULT_CSS = """
    StackView { height: 6; border-left: solid $primary; border-top: solid $primary; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="stack")

    def show(self, p: dict[str, Any] | None, selected: int = 0) -> None:
        """The frames of pause ``p``; ``None`` empties the pane."""
        self.border_title = "user stack (innermost first, u/d move)"
        frames = [] if p is None else p.get("frames") or []
        if p is not None and not frames:
            text = "(no user frames: an autograd or optimizer thread)"
        else:
            text = "\n".join(("[b reverse]▶ " if i == selected else "  ")
                             + escape(f"{f['func']}  {f['file']}:{f['line']}") + ("[/]" if i == selected else "")
                             for i, f in enumerate(frames))
        self.query_one("#stack", Static).update(text)
