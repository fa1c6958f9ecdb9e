"""Facts about a collective op (c10d.*, _c10d_functional.*) kept as node attrs: kind, bytes and
process group. Called from the recorder only for collective ops."""
from __future__ import annotations

from typing import Any

import torch


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in _tensors(y)]
    return []


def collective_attrs(func: Any, args: tuple, kwargs: dict, out: Any) -> dict[str, Any]:
    ts = _tensors(args)
    attrs: dict[str, Any] = {"collective": func.overloadpacket.__name__ if hasattr(func, "overloadpacket") else str(func),
                             "bytes": sum(t.numel() * t.element_size() for t in ts)}
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.ScriptObject) or type(a).__name__ in ("ProcessGroup", "ScriptObject"):
            attrs["group"] = _group_name(a)
        elif isinstance(a, str) and func.namespace == "_c10d_functional":
            attrs.setdefault("group", a)
    return attrs


def _group_name(pg: Any) -> str:
    for attr in ("group_name", "name"):
        try:
            v = getattr(pg, attr)
            v = v() if callable(v) else v
            if v:
                return str(v)
        except Exception:  # ScriptObject wrappers raise on unknown attrs
            continue
    return "default"
