"""The debugger's screen: composes the pause, stack, breakpoint, output and prompt widgets and
shows the protocol's states in them. The app (``debug.py``) drives the protocol and holds the state."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from gprof_tui.widgets.breakpoints import BreakpointList
from gprof_tui.widgets.pause_view import PauseView
from gprof_tui.widgets.prompt import Prompt
from gprof_tui.widgets.stack_view import StackView


class DebugScreen(Screen):
    """The app's default screen: help and the step browser go on top of it, and the app keeps
    updating it underneath (through ``DebugApp.main``)."""

    DEFAULT_CSS = """
    #left { width: 62%; }
    #log { height: 10; border-top: solid $primary; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield PauseView(id="left")
            with Vertical():
                yield StackView(id="stack-box")
                yield BreakpointList(id="breaks")
        yield RichLog(id="log", wrap=False, max_lines=5000, markup=False)
        yield Prompt(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#log", RichLog).border_title = "program output"

    def show_pause(self, p: dict[str, Any]) -> None:
        self.query_one(PauseView).show(p)
        self.query_one(StackView).show(p)

    def show_running(self) -> None:
        self.query_one(PauseView).note("running...")

    def show_finished(self, text: str) -> None:
        """The program is gone: its last pause is stale."""
        self.query_one(PauseView).note(text, clear=True)
        self.query_one(StackView).show(None)

    def log_line(self, line: str) -> None:
        self.query_one("#log", RichLog).write(line)
