"""What the recorder reads off an op's arguments and outputs besides the per-tensor fast path
(gprof/capture/recorder.py): tensor lists, tensors without one storage or shape, the shapes a FLOP
formula needs, and value previews for the debugger. Plain functions, so the hot path stays short."""
from __future__ import annotations

from typing import Any

import torch

_storage_key = torch._C._storage_address  # type: ignore[attr-defined]


def opaque_meta(t: torch.Tensor) -> tuple:
    """A tensor without one storage or one shape (sparse, nested): no dataflow edge, no shape."""
    return (0, (), t.dtype, t.device)


def input_metas(seq: list | tuple, tracker: Any) -> list[tuple]:
    """Tensor lists (cat, foreach ops): the rare path, kept out of the inlined loop."""
    metas = []
    for t in seq:
        if isinstance(t, torch.Tensor):
            try:
                e = tracker.live.get(_storage_key(t))
                sid = e[0] if e is not None else tracker.register_input(t.untyped_storage(), t.is_meta)
                metas.append((sid, t.shape, t.dtype, t.device))
            except (RuntimeError, NotImplementedError):
                metas.append(opaque_meta(t))
    return metas


def flat_tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in flat_tensors(y)]
    if isinstance(x, dict):
        return [t for y in x.values() for t in flat_tensors(y)]
    return []


def arg_shapes(args: tuple) -> tuple:
    """:func:`shape_of` of an op's positional arguments: tensors and scalars need no recursion."""
    return tuple([a.shape if isinstance(a, torch.Tensor) else shape_of(a) if type(a) is list or type(a) is tuple else a
                  for a in args])


def shape_of(x: Any) -> Any:
    """Tensors -> shapes, through lists and tuples: all a shape formula reads."""
    if isinstance(x, torch.Tensor):
        return x.shape
    if type(x) is list or type(x) is tuple:
        return type(x)(shape_of(y) for y in x)
    return x


def previews(out: Any, n: int) -> dict[str, Any] | None:
    """First ``n`` values of each output, as plain numbers (read-only: never touches ``out``)."""
    previews: list[list[Any] | None] = []
    for t in flat_tensors(out):
        if t.is_floating_point() or not (t.is_complex() or t.is_sparse or t.is_nested or t.is_meta):
            try:
                previews.append(t.detach().reshape(-1)[:n].tolist())
            except (RuntimeError, NotImplementedError):
                previews.append(None)
        else:
            previews.append(None)
    return {"preview": previews} if previews else None
