"""The Compile suggestions tab: the suggestions as a list, the selected one's snippet beside it."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ListItem, ListView, Static, TextArea

from gprof.analyses.items import analysis_items, item_snippet
from gprof_tui.stepdata import item_title
from gprof_tui.widgets.analyses import analysis_text


class CompileSuggestions(Horizontal):
    """The snippet sits in a read-only text box so it can be selected with the mouse as well as
    copied with ``y`` (the screen's binding reads ``snippet``)."""

    DEFAULT_CSS = """
    CompileSuggestions #suggestions { width: 40%; }
    """

    def __init__(self, value: Any) -> None:
        super().__init__()
        self._value = value
        self._items = analysis_items(value)
        self._snippets = [item_snippet(i) or "" for i in self._items]

    def compose(self) -> ComposeResult:
        entries = [ListItem(Static(escape(f"{i + 1}. {item_title(item)}"))) for i, item in enumerate(self._items)]
        yield ListView(*(entries or [ListItem(Static(analysis_text("compile_suggestions", self._value)))]),
                       id="suggestions")
        yield TextArea(self._snippets[0] if self._snippets else "", id="snippet", read_only=True, language=None)

    @property
    def snippet(self) -> str:
        """The snippet on show ("" when there is none)."""
        return self.query_one("#snippet", TextArea).text

    @on(ListView.Highlighted, "#suggestions")
    def _highlighted(self, event: ListView.Highlighted) -> None:
        i = event.list_view.index
        if i is not None and i < len(self._snippets):
            self.query_one("#snippet", TextArea).text = self._snippets[i]
