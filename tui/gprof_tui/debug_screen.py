"""The debugger's screen: composes the pause, source, stack, breakpoint, output and prompt widgets
and shows the protocol's states in them. The app (``debug.py``) drives the protocol and holds the
state. The keys live here, not on the app, so a screen pushed on top (the step browser, help)
never passes them to a debugger it hides."""
from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from gprof_tui.widgets.breakpoints import BreakpointList
from gprof_tui.widgets.pause_view import PauseView
from gprof_tui.widgets.prompt import Prompt
from gprof_tui.widgets.source_view import SourceView
from gprof_tui.widgets.stack_view import StackView

#: (key, action on the app, footer label, help text): the footer and ``?`` both come from here.
#: Detach and help come first, so a narrow terminal's footer still shows them.
KEYS = [
    ("q", "quit_debugger", "detach", "detach and quit: the program runs on to its end, without breakpoints"),
    ("question_mark", "help", "help", "this help"),
    ("c", "resume('continue')", "cont", "continue to the next breakpoint"),
    ("s", "resume('step')", "step", "step to the next node"),
    ("n", "resume('next')", "next", "next: step over the rest of the current module"),
    ("r", "resume('finish')", "end step", "run to the end of the step"),
    ("u", "frame(1)", "up", "up the user stack (outer frame): source pane and x follow"),
    ("d", "frame(-1)", "down", "down the user stack (inner frame)"),
    ("x", "prompt('eval')", "eval", "evaluate in the selected frame (locals, self) and over out, outs, ins, in0, out0"),
    ("b", "prompt('break')", "break", "add a breakpoint: nan, @module, op, file.py:LINE, once ..., ignore N ..."),
    ("e", "toggle_breakpoint", "on/off", "enable / disable the breakpoint selected in the list (Tab to it)"),
    ("E", "edit_breakpoint", "edit", "edit the selected breakpoint's spec"),
    ("delete", "delete_breakpoint", "rm bp", "delete the selected breakpoint"),
    ("p", "pause_now", "pause", "pause the running program at its next op"),
    ("k", "stop", "stop", "stop the program: KeyboardInterrupt in the training thread at its next op"),
    ("w", "prompt('save')", "save", "write a tensor to a file: NAME PATH, e.g. 'out0 /tmp/out0.pt'"),
    ("t", "browse", "steps", "browse the recorded steps of this rank; b on a node breaks on its key"),
    ("right_curly_bracket", "rank(1)", "rank+", "follow the next rank (spawned ranks)"),
    ("left_curly_bracket", "rank(-1)", "rank-", "follow the previous rank"),
]


class DebugScreen(Screen):
    """The app's default screen: help and the step browser go on top of it, and the app keeps
    updating it underneath (through ``DebugApp.main``)."""

    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *(Binding(key, f"app.{action}", label) for key, action, label, _ in KEYS),
        Binding("escape", "app.cancel_prompt", "cancel", show=False)]

    DEFAULT_CSS = """
    #left { width: 58%; }
    #log { height: 6; border-top: solid $primary; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield PauseView(id="left")
            with Vertical():
                yield SourceView(id="source-box")
                yield StackView(id="stack-box")
                yield BreakpointList(id="breaks")
        yield RichLog(id="log", wrap=False, max_lines=5000, markup=False)
        yield Prompt(id="prompt")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#log", RichLog).border_title = "program output"

    def show_pause(self, p: dict[str, Any]) -> None:
        self.query_one(PauseView).show(p)
        self.show_frame(p, p["frames"][0] if p.get("frames") else None, 0)

    def show_frame(self, p: dict[str, Any], frame: dict[str, Any] | None, index: int) -> None:
        """Frame ``index`` of pause ``p`` in the source and stack panes."""
        if frame is not None and "source_lines" not in frame:
            frame = {**frame, "source_lines": p.get("source_lines", [])}
        self.query_one(SourceView).show(frame, index, len(p.get("frames") or []))
        self.query_one(StackView).show(p, index)

    def show_running(self, text: str = "running...") -> None:
        self.query_one(PauseView).note(text)

    def show_finished(self, text: str) -> None:
        """The program is gone: its last pause is stale."""
        self.query_one(PauseView).note(text, clear=True)
        self.query_one(StackView).show(None)
        self.query_one(SourceView).show(None)

    def log_line(self, line: str) -> None:
        self.query_one("#log", RichLog).write(line)
