"""Reading stored analysis results as items, for every view.

An analysis result is a list of items, or a dict holding one under a list field (``chains``,
``hazards``...); code to paste is a string field (``snippet``). Views read results through these
helpers so a new analysis or field needs no change in any of them.
"""
from __future__ import annotations

from typing import Any

LIST_FIELDS = ("chains", "items", "hazards", "suggestions", "regions", "candidates", "results")
SNIPPET_FIELDS = ("snippet", "code", "compile_snippet")


def analysis_items(value: Any) -> list[dict[str, Any]]:
    """An analysis result as a list of item dicts: the list itself, or the first list field."""
    if isinstance(value, list):
        return [v if isinstance(v, dict) else {"value": v} for v in value]
    if isinstance(value, dict):
        for name in LIST_FIELDS:
            if isinstance(value.get(name), list):
                return analysis_items(value[name])
    return []


def item_snippet(item: dict[str, Any]) -> str | None:
    return next((item[f] for f in SNIPPET_FIELDS if isinstance(item.get(f), str)), None)
