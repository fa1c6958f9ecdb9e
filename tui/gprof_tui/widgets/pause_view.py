"""The pause pane: where the program stopped, the tensors there, and the last ``x`` result."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from gprof_tui.render import TENSOR_COLUMNS, pause_text, tensor_rows, tensor_summary


class PauseView(Vertical):
    """Shows a pause dict of the debug protocol as it came; it keeps no state of its own, so the
    app's idea of "paused or not" is the only one."""

    DEFAULT_CSS = """
    PauseView #pause-box { height: 1fr; }
    PauseView #tensors { height: auto; max-height: 14; }
    PauseView #evalout { height: auto; max-height: 6; color: $accent; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="pause-box"):
            yield Static("waiting for the program to pause (breakpoints below)...", id="pause")
        yield DataTable(id="tensors", cursor_type="row", zebra_stripes=True)
        yield Static("", id="evalout")

    def on_mount(self) -> None:
        self.query_one("#tensors", DataTable).add_columns(*TENSOR_COLUMNS)

    def show(self, p: dict[str, Any]) -> None:
        """A new pause: its description and tensors; the previous ``x`` result goes."""
        self.query_one("#pause", Static).update(pause_text(p))
        table = self.query_one("#tensors", DataTable)
        table.clear()
        table.add_rows(tensor_rows(p["inputs"] + p["outputs"]))
        self.query_one("#evalout", Static).update("")

    def note(self, text: str, *, clear: bool = False) -> None:
        """Plain text in place of a pause (running, finished); ``clear`` drops the stale tensors."""
        self.query_one("#pause", Static).update(escape(text))
        if clear:
            self.query_one("#tensors", DataTable).clear()

    def show_eval(self, result: dict[str, Any]) -> None:
        """An ``eval`` reply: the repr, after a one-line summary when the value is a tensor."""
        text = result["repr"]
        t = result.get("tensor")
        if t:
            text = f"{tensor_summary(t)}\n{text}"
        self.query_one("#evalout", Static).update(escape(text))
