"""The debugger's one-line prompt: a breakpoint, an expression or a save, asked at the bottom."""
from __future__ import annotations

from textual import on
from textual.widgets import Input

from gprof_tui.messages import PromptSubmitted

#: prompt kind -> placeholder
_PROMPTS = {
    "break": "breakpoint, e.g. nan | inf | @encoder:backward | addmm if absmax > 1e4 (Enter adds, Esc cancels)",
    "eval": "expression in the selected frame (its locals, self) and over out, outs, ins, in0, out0 (Enter runs)",
    "save": "NAME PATH, e.g. out0 /tmp/out0.pt (Enter saves)",
    "edit": "the breakpoint's new spec (Enter replaces it, Esc keeps it)",
}


class Prompt(Input):
    """Hidden until asked; remembers what it asked, so the answer arrives as a
    ``PromptSubmitted`` that names its kind."""

    DEFAULT_CSS = """
    Prompt { display: none; }
    Prompt.shown { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._kind: str | None = None

    def ask(self, kind: str, value: str = "") -> None:
        """Show the prompt for ``kind`` (break, eval, save, edit), holding ``value``, and take the keyboard."""
        self._kind = kind
        self.placeholder = _PROMPTS[kind]
        self.value = value
        self.add_class("shown")
        self.focus()

    def cancel(self) -> None:
        self.remove_class("shown")
        self._kind = None

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        kind, text = self._kind, event.value.strip()
        self.cancel()
        if kind is not None and text:
            self.post_message(PromptSubmitted(kind, text))
