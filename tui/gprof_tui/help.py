"""The `?` screen. Keys follow pdb and pudb: c continue, n next, s step, b break, q quit."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

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
        ("Tab / Shift+Tab", "move between panes; click or arrow the tabs at the top"),
    ],
    "debug": [
        ("c", "continue to the next breakpoint"), ("s", "step to the next node"),
        ("n", "next: step over the rest of the current module"), ("r", "run to the end of the step"),
        ("b", "add a breakpoint (same syntax as --break; see docs/debugger.md)"),
        ("d / e", "disable / enable the breakpoint selected in the list"),
        ("x", "evaluate an expression over the tensors: out, outs, ins, in0, out0, torch"),
        ("w", "write a tensor to a file: NAME PATH, e.g. 'out0 /tmp/out0.pt'"),
        ("t", "browse the recorded steps and pick a node to break on (b there)"),
        ("?", "this help"), ("q", "detach and quit: the program runs on without breakpoints"),
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
        rows = "\n".join(f"[b]{k:<18}[/b] {v}" for k, v in KEYS[self.mode])
        title = "torch-gprof debugger keys" if self.mode == "debug" else "torch-gprof browse keys"
        yield VerticalScroll(Static(f"[b u]{title}[/b u]\n\n{rows}\n\nEsc closes this help."), id="help")
