"""The `?` screen. Keys follow pdb and pudb: c continue, n next, s step, u/d up/down, b break.
The debugger's keys come from the table its screen binds (debug_screen.KEYS), so help and footer
never disagree."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gprof_tui.debug_screen import KEYS as DEBUG_KEYS

#: how Textual names a key -> what the user types
_KEY_NAMES = {"question_mark": "?", "right_curly_bracket": "}", "left_curly_bracket": "{", "delete": "Del"}

KEYS = {
    "browse": [
        ("?", "this help"), ("q", "quit (in the debugger: back to the debugger)"),
        ("/", "filter nodes by op, module, key or source; Esc clears"),
        ("o / O", "cycle the sort column / reverse it (or click a column header)"),
        ("> / <", "next / previous page of nodes"),
        ("] / [", "next / previous step"), ("} / {", "next / previous rank"),
        ("Enter on a module", "show only that module's nodes"),
        ("b", "breakpoint on the selected node's stable key (live debugger), or show the --break to use"),
        ("y", "copy the selected compile snippet to the clipboard"),
        ("t", "fusion target of the analysis tabs: as recorded, cpu (Inductor C++), cuda (Triton)"),
        ("Tab / Shift+Tab", "move between panes; click or arrow the tabs at the top"),
    ],
}


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 90; max-height: 80%; border: round $primary; background: $surface; padding: 1 2; }
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def compose(self) -> ComposeResult:
        keys = KEYS.get(self.mode) or [(_KEY_NAMES.get(k, k), text) for k, _, _, text in DEBUG_KEYS]
        title = "torch-gprof debugger keys" if self.mode == "debug" else "torch-gprof browse keys"
        # styled text, not markup: a key such as "] / [" followed by spaces and a closing tag is
        # read differently by Rich's escape and Textual's markup parser, and showed "[/b]"
        text = Text()
        text.append(title, style="bold underline")  # (a Text's own style would cover all it holds)
        text.append("\n\n")
        for k, v in keys:
            text.append(f"{k:<18}", style="bold")
            text.append(f" {v}\n")
        text.append("\nEsc closes this help.")
        yield VerticalScroll(Static(text), id="help")
