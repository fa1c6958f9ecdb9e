"""Every message the TUI's widgets send each other, in one place, so a reader sees the whole
conversation here: which widget announces what, and which screen acts on it.

Widgets never reach into their siblings; they post one of these and the screen (or app) that
composes them routes it."""
from __future__ import annotations

from textual.message import Message


class ModuleSelected(Message):
    """The module tree picked a module (``None``: all modules). The browse screen narrows the
    node table to it."""

    def __init__(self, module: str | None) -> None:
        super().__init__()
        self.module = module


class NodeHighlighted(Message):
    """The node table's cursor is on node ``idx``. The browse screen shows it in the details pane.
    ``None``: the page shows no node (nothing matches, or the step's nodes do not decode), so the
    details pane must not keep showing a node of another page or step."""

    def __init__(self, idx: int | None) -> None:
        super().__init__()
        self.idx = idx


class PromptSubmitted(Message):
    """The debugger's prompt line was answered: ``kind`` is what was asked (break, eval, save),
    ``text`` the stripped answer. The debug app turns it into a protocol command."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__()
        self.kind = kind
        self.text = text
