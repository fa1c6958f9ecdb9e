"""Facts about a collective op (``c10d.*``, ``_c10d_functional.*``) kept as node attrs.

The recorder calls :func:`collective_attrs` for collective ops only, right after the op returns.
What it returns is what cross-rank analysis compares across ranks (kind, shapes, dtypes, group),
plus ``async_op`` and ``end_ns``: c10d ops return a ``Work`` and finish later on the backend's
thread (gloo, NCCL), so the op's own duration is only the launch. ``end_ns`` is when the Work's
future ran its callback, on the node clock: an upper bound on completion (the callback needs the
GIL), present only when it ran before the step was built.

DDP's buckets and the ranks' comparable sequence are read off the built graph, torch-free, in
:mod:`gprof.graph.collectives`.
"""
from __future__ import annotations

from time import perf_counter_ns
from typing import Any

import torch


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in _tensors(y)]
    return []


def collective_kind(name: str) -> str:
    """``allreduce_`` (c10d) and ``all_reduce`` (functional) are the same collective: ``allreduce``."""
    return name.rstrip("_").replace("_", "")


def collective_attrs(func: Any, args: tuple, kwargs: dict, out: Any) -> dict[str, Any]:
    """kind, bytes, shapes, dtypes and process group of one collective call; ``end_ns`` is filled
    in when its Work completes (a plain dict write from the backend thread, under the GIL)."""
    name = func.overloadpacket.__name__ if hasattr(func, "overloadpacket") else str(func)
    ts = _tensors(args) + _tensors(list(kwargs.values()))
    attrs: dict[str, Any] = {
        "collective": name,
        "kind": collective_kind(name),
        "bytes": sum(t.numel() * t.element_size() for t in ts),
        "shapes": [list(t.shape) for t in ts],
        "dtypes": [str(t.dtype).removeprefix("torch.") for t in ts],
    }
    schema = getattr(func, "_schema", None)
    given = dict(zip([a.name for a in schema.arguments], args)) if schema is not None else {}
    given.update(kwargs)
    defaults = {a.name: a.default_value for a in schema.arguments if a.has_default_value()} if schema else {}
    for arg_name, a in {**defaults, **given}.items():
        if isinstance(a, torch.ScriptObject) and a._type().qualified_name().endswith(".ProcessGroup"):
            attrs.update(_process_group(a))
        elif arg_name == "group_name" and isinstance(a, str):
            attrs["group"] = a
            attrs["group_size"] = _functional_group_size(a)
        elif arg_name in ("root", "root_rank", "src", "dst") and isinstance(a, int):
            attrs["peer"] = a
        elif arg_name == "async_op" and isinstance(a, bool):
            attrs["async_op"] = a  # False: the caller waits right after the launch (dist.all_reduce)
    _on_completion(out, attrs)
    return attrs


def _process_group(obj: torch.ScriptObject) -> dict[str, Any]:
    from torch._C._distributed_c10d import ProcessGroup

    pg = ProcessGroup.unbox(obj)
    return {"group": pg.group_name or "default", "group_size": pg.size(), "group_rank": pg.rank()}


def _functional_group_size(name: str) -> int | None:
    try:
        from torch.distributed.distributed_c10d import _resolve_process_group

        # private c10d helper: its parameter is the NewType GroupName on recent torch, a str on older
        # ones (torch>=2.4 is supported), and a functional collective's group argument is that name
        return _resolve_process_group(name).size()  # type: ignore[arg-type]
    except (ImportError, RuntimeError, ValueError, KeyError):
        return None


def _on_completion(out: Any, attrs: dict[str, Any]) -> None:
    """Record ``end_ns`` when a c10d op's Work finishes. Functional collectives have no Work;
    their wait is the ``wait_tensor`` node itself."""
    work = out[-1] if isinstance(out, (tuple, list)) and out else None
    if not (isinstance(work, torch.ScriptObject) and work._type().qualified_name().endswith(".Work")):
        return
    from torch._C._distributed_c10d import Work

    try:
        fut = Work.unbox(work).get_future()
    except (RuntimeError, TypeError):  # a backend without futures: launch time is all we get
        return

    def done(_: Any) -> None:
        attrs["end_ns"] = perf_counter_ns()

    fut.add_done_callback(done)
