"""The source pane: the lines around the selected user frame, the current line marked (pudb's
source view). The lines come from the debugged process, so it works attached to any process."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import Static


class SourceView(ScrollableContainer):
    """Shows one frame of the protocol (``file``, ``line``, ``func``, ``source_lines``)."""

    DEFAULT_CSS = """
    SourceView { height: 1fr; border-left: solid $primary; }
    SourceView #source { width: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="source")

    def show(self, frame: dict[str, Any] | None, index: int = 0, depth: int = 0) -> None:
        """Frame ``index`` of ``depth`` user frames; ``None`` empties the pane."""
        body = self.query_one("#source", Static)
        if frame is None:
            self.border_title = "source"
            body.update("")
            return
        self.border_title = f"{frame['file'].rsplit('/', 1)[-1]}:{frame['line']} in {frame['func']}" + (
            f"  (frame {index + 1}/{depth}, u/d)" if depth > 1 else "")
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, line in frame.get("source_lines") or []:
            current = n == frame["line"]
            text.append(f"{'▶' if current else ' '}{n:>5} {line}\n", style="bold reverse" if current else "")
        body.update(text if text.plain else Text(f"(no source for {frame['file']})"))
        lines = frame.get("source_lines") or []
        if lines:  # after the refresh: the new text's height is known only then
            row = frame["line"] - lines[0][0]
            self.call_after_refresh(lambda: self.scroll_to(y=max(0, row - self.size.height // 2), animate=False))
