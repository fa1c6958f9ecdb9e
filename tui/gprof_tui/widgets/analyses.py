"""An analysis tab (Unfused chains, Hazards): the stored result as the text report words it
(gprof/analyses/text.py), so a number reads the same in the report and the TUI."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gprof.analyses.items import analysis_items
from gprof.analyses.text import formatters
from gprof_tui.stepdata import item_title


def analysis_text(name: str, value: Any) -> str:
    """Markup for one stored analysis result. A missing, failed or empty analysis says which it
    is, so an empty tab is never mistaken for a clean step."""
    if value is None:
        return f"No {name.replace('_', ' ')} for this step (the analysis did not run or found none)."
    if isinstance(value, dict) and set(value) == {"error"}:
        return f"The {name} analysis failed: {escape(str(value['error']))}"
    items = analysis_items(value)
    if not items:
        return f"No {name.replace('_', ' ')} found in this step."
    fmt = dict(formatters()).get(name)
    if fmt is not None:  # the text report's own wording, units and orderings
        try:
            return escape("\n".join(line.removeprefix("   ") for line in fmt({name: value})))
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # a result of an older layout: listed item by item below
    lines = []
    for i, item in enumerate(items, 1):
        lines.append(f"[b]{i}.[/b] {escape(item_title(item))}")
        for k, v in item.items():
            if isinstance(v, list) and v and len(v) <= 40:
                lines.append(f"     {escape(k)}: {escape(', '.join(map(str, v)))}")
    return "\n".join(lines)


class AnalysisText(VerticalScroll):
    """One analysis of one step; the Static's id is the analysis name (``#fusion``, ``#hazards``)."""

    def __init__(self, name: str, value: Any) -> None:
        super().__init__()
        self._analysis = name
        self._value = value

    def compose(self) -> ComposeResult:
        yield Static(analysis_text(self._analysis, self._value), id=self._analysis)
