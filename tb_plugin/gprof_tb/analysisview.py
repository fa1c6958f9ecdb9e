"""Analyses results, normalised for display.

The analyses store JSON under ``fusion``, ``hazards``, ``compile_suggestions`` and ``op_classes``.
The tab reads them tolerantly: a result is a list of items (or a dict holding one), and an item's
node references are integer node indices (``nodes``, ``node``, ``idx``...) or stable node keys
(``keys``, ``key``...). Code snippets are the string fields ``snippet``/``code``. Anything else is
shown as plain fields, so a new field in an analysis needs no change here.
"""
from __future__ import annotations

from typing import Any

from gprof.analyses.items import SNIPPET_FIELDS, analysis_items, item_snippet
from gprof_tb.stepdata import StepData

ANALYSES = ("fusion", "hazards", "compile_suggestions", "op_classes")
_IDX_FIELDS = ("nodes", "node_idx", "node_ids", "indices", "node", "idx")
_KEY_FIELDS = ("keys", "node_keys", "key", "node_key")


def _refs(item: dict[str, Any], fields: tuple[str, ...], kind: type) -> list[Any]:
    out: list[Any] = []
    for name in fields:
        v = item.get(name)
        if isinstance(v, kind) and not isinstance(v, bool):
            out.append(v)
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, kind) and not isinstance(x, bool))
    return out


def _normalise(item: dict[str, Any], data: StepData) -> dict[str, Any]:
    nodes = _refs(item, _IDX_FIELDS, int)
    for key in _refs(item, _KEY_FIELDS, str):
        rows = data.sql("SELECT idx FROM nodes WHERE key = ?", (key,))
        if rows:
            nodes.append(rows[0][0])
    snippet = item_snippet(item)
    skip = set(_IDX_FIELDS) | set(_KEY_FIELDS) | set(SNIPPET_FIELDS)
    fields = {k: v for k, v in item.items() if k not in skip and isinstance(v, (str, int, float, bool, type(None)))}
    lists = {k: v for k, v in item.items() if k not in skip and isinstance(v, list) and len(v) <= 50
             and all(isinstance(x, (str, int, float)) for x in v)}
    return {"fields": fields, "lists": lists, "snippet": snippet, "nodes": list(dict.fromkeys(nodes))}


def analyses_view(data: StepData) -> dict[str, Any]:
    """{name: {"present", "error", "items", "summary"}} for each known analysis."""
    return data.memo("analyses_view", lambda: _view(data))


def _flatten(value: dict[str, Any], prefix: str = "", depth: int = 3) -> dict[str, Any]:
    """Scalar fields of a result, nested dicts flattened to dotted names (``by_phase.forward.view``)."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        name = f"{prefix}{k}"
        if isinstance(v, (str, int, float, bool)):
            out[name] = v
        elif isinstance(v, dict) and depth > 1:
            out.update(_flatten(v, name + ".", depth - 1))
    return out


def _view(data: StepData) -> dict[str, Any]:
    raw = data.analyses()
    out: dict[str, Any] = {}
    for name in ANALYSES:
        value = raw.get(name)
        if value is None:
            out[name] = {"present": False}
            continue
        error = value.get("error") if isinstance(value, dict) and len(value) == 1 else None
        summary = _flatten(value) if isinstance(value, dict) else {}
        items = [] if name == "op_classes" else [_normalise(i, data) for i in analysis_items(value)]
        out[name] = {"present": True, "error": error, "items": items, "summary": summary}
    return out


def regions_of(data: StepData, module: str | None) -> list[int]:
    """Compile suggestions whose module (or modules) contain ``module``: suggestions name modules,
    not nodes."""
    if module is None:
        return []
    found = []
    for number, item in enumerate(analyses_view(data)["compile_suggestions"].get("items", [])):
        names = [item["fields"].get("module")] + list(item["lists"].get("modules", []))
        if any(isinstance(m, str) and (module == m or module.startswith(m + ".") or m == "") for m in names):
            found.append(number)
    return found


def node_marks(data: StepData) -> dict[int, dict[str, list[int]]]:
    """idx -> {"chains": [fusion item numbers], "hazards": [...], "regions": [...]}: what the graph highlights."""
    def compute() -> dict[int, dict[str, list[int]]]:
        view = analyses_view(data)
        marks: dict[int, dict[str, list[int]]] = {}
        for name, kind in (("fusion", "chains"), ("hazards", "hazards"), ("compile_suggestions", "regions")):
            for number, item in enumerate(view[name].get("items", [])):
                for idx in item["nodes"]:
                    marks.setdefault(idx, {}).setdefault(kind, []).append(number)
        return marks
    return data.memo("marks", compute)
