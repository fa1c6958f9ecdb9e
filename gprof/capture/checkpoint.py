"""torch.utils.checkpoint's regions, read off its saved-tensor hooks (no patching of torch).

Non-reentrant checkpointing (what Hugging Face uses) runs the checkpointed forward under a
``_checkpoint_hook`` and its recomputation under a ``_recomputation_hook``; both are
``saved_tensors_hooks`` whose pack hook closes over the region's ``_CheckpointFrame``. The module
pre-hook sees the first (a region opens: remember where the forward ops start) and the recorder the
second (the ops re-run that region), so a recomputed op can be linked to the forward op it repeats.
Reentrant checkpointing needs none of this: its recomputation runs inside the region's own
``CheckpointFunctionBackward`` node, whose sequence number names the region.
"""
from __future__ import annotations

from typing import Any

import torch

top_saved_hooks = torch._C._autograd._top_saved_tensors_default_hooks

#: (hook class, name of the pack hook's free variable that holds the frame, is it a weak reference)
_OPENS = ("_checkpoint_hook.", "frame", False)
_RECOMPUTES = ("_recomputation_hook.", "target_frame_ref", True)


def _frame(pack_hook: Any, kind: tuple[str, str, bool]) -> Any:
    """The region's frame if ``pack_hook`` is checkpoint's hook of this kind, else None; ``False``
    for checkpoint's hook whose frame cannot be read (a torch that changed its internals)."""
    fn = getattr(pack_hook, "__wrapped__", pack_hook)  # torch wraps some hooks in dynamo.disable
    if not getattr(fn, "__qualname__", "").startswith(kind[0]):
        return None
    try:
        frame = fn.__closure__[fn.__code__.co_freevars.index(kind[1])].cell_contents
        return frame() if kind[2] else frame
    except (AttributeError, ValueError, TypeError, IndexError):
        return False


def opened_region(pack_hook: Any) -> Any:
    """The frame of the non-reentrant region whose forward runs under ``pack_hook`` (None: not one)."""
    return _frame(pack_hook, _OPENS) or None


def recomputed_region(pack_hook: Any) -> Any:
    """The frame of the region a non-reentrant recomputation re-runs under ``pack_hook``: None when
    the hook is not checkpoint's, ``False`` when it is but the frame cannot be read."""
    return _frame(pack_hook, _RECOMPUTES)
