"""Analysis results stored with the step, normalised for display.

The analyses store JSON under ``fusion``, ``hazards``, ``compile_suggestions`` and ``op_classes``.
Views read them tolerantly: a result is a list of items (or a dict holding one), and an item's
node references are integer node indices (``nodes``, ``node``, ``idx``...) or stable node keys
(``keys``, ``key``...), resolved here to indices. Code snippets are the string fields
``snippet``/``code``. Anything else is kept as plain fields, so a new field in an analysis needs
no change in any view.
"""
from __future__ import annotations

from typing import Any

from gprof.analyses.items import SNIPPET_FIELDS, analysis_items, item_snippet
from gprof.store.queries.nodes import node_idx
from gprof.store.step_file import StepReader

ANALYSES = ("fusion", "hazards", "compile_suggestions", "op_classes")
#: analysis name -> what the views call its items when marking nodes
MARK_KINDS = {"fusion": "chains", "hazards": "hazards", "compile_suggestions": "regions"}
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


def node_idx_for_keys(r: StepReader, keys: list[str]) -> list[int]:
    """Indices of the nodes with these stable keys, in order; keys not in the step are left out."""
    found = (node_idx(r, k) for k in keys)
    return [i for i in found if i is not None]


def _normalise(r: StepReader, item: dict[str, Any]) -> dict[str, Any]:
    nodes = _refs(item, _IDX_FIELDS, int) + node_idx_for_keys(r, _refs(item, _KEY_FIELDS, str))
    skip = set(_IDX_FIELDS) | set(_KEY_FIELDS) | set(SNIPPET_FIELDS)
    fields = {k: v for k, v in item.items() if k not in skip and isinstance(v, (str, int, float, bool, type(None)))}
    lists = {k: v for k, v in item.items() if k not in skip and isinstance(v, list) and len(v) <= 50
             and all(isinstance(x, (str, int, float)) for x in v)}
    return {"fields": fields, "lists": lists, "snippet": item_snippet(item), "nodes": list(dict.fromkeys(nodes))}


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


def analyses_view(r: StepReader, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """{name: {"present", "error", "items", "summary"}} for each known analysis; ``raw`` is the
    step's stored results when the caller has them already."""
    raw = r.analyses() if raw is None else raw
    out: dict[str, Any] = {}
    for name in ANALYSES:
        value = raw.get(name)
        if value is None:
            out[name] = {"present": False}
            continue
        error = value.get("error") if isinstance(value, dict) and len(value) == 1 else None
        summary = _flatten(value) if isinstance(value, dict) else {}
        items = [] if name == "op_classes" else [_normalise(r, i) for i in analysis_items(value)]
        out[name] = {"present": True, "error": error, "items": items, "summary": summary}
    return out


def regions_of(view: dict[str, Any], module: str | None) -> list[int]:
    """Numbers of the compile suggestions in ``view`` whose module (or modules) contain ``module``:
    suggestions name modules, not nodes."""
    if module is None:
        return []
    found = []
    for number, item in enumerate(view["compile_suggestions"].get("items", [])):
        names = [item["fields"].get("module"), *item["lists"].get("modules", [])]
        if any(isinstance(m, str) and (module == m or module.startswith(m + ".") or m == "") for m in names):
            found.append(number)
    return found


def node_marks(view: dict[str, Any]) -> dict[int, dict[str, list[int]]]:
    """idx -> {"chains": [fusion item numbers], "hazards": [...], "regions": [...]}: what views highlight."""
    marks: dict[int, dict[str, list[int]]] = {}
    for name, kind in MARK_KINDS.items():
        for number, item in enumerate(view[name].get("items", [])):
            for idx in item["nodes"]:
                marks.setdefault(idx, {}).setdefault(kind, []).append(number)
    return marks
