"""Live bytes by storage, the way MemTracker counts them.

Every storage the recorder sees (as an input or an output) gets a session-unique id and a weakref
whose callback fires when PyTorch frees it. That gives allocation, free and live bytes per op on
any device, and the storage id is also what dataflow edges are keyed on (saved tensors come back
in backward as new Python objects on the same storage).

A wrapper tensor subclass (DTensor, as FSDP2's parameters, gradients and optimizer state are) has a
storage of its *global* size that holds no memory: its data is the local tensor inside it, which
ops on the wrapper reach only below this dispatch mode. Such storages count 0 bytes, and the
training state registers the local tensors themselves (:func:`local_tensor`), so each rank counts
its own shard.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch


def local_tensor(t: torch.Tensor) -> torch.Tensor | None:
    """The tensor holding a wrapper subclass's data on this rank (DTensor's local shard), or None."""
    if type(t) is torch.Tensor or type(t) is torch.nn.Parameter:
        return None
    local = getattr(t, "_local_tensor", None)
    return local if isinstance(local, torch.Tensor) else None


class _StorageRef(weakref.ref):
    """A weakref that knows its storage's key: one shared callback instead of a closure each."""

    __slots__ = ("key",)
    key: int


class StorageTracker:
    __slots__ = (
        "__weakref__",
        "_free_callback",
        "free_events",
        "freed_since",
        "late_seen",
        "live",
        "live_bytes",
        "next_sid",
        "op_counter",
    )

    def __init__(self) -> None:
        #: storage cdata -> (sid, nbytes, weakref)
        self.live: dict[int, tuple[int, int, weakref.ref]] = {}
        self.live_bytes = 0
        self.freed_since = 0
        self.next_sid = 1
        #: (sid, nbytes, ops recorded when freed) for the step being recorded
        self.free_events: list[tuple[int, int, int]] = []
        #: (sid, nbytes, op index) of storages first seen as an *input* during the step: they
        #: existed before it (the batch, or state of a model first used under the profiler)
        self.late_seen: list[tuple[int, int, int]] = []
        #: a callable giving the number of ops recorded so far (set by the recorder)
        self.op_counter = lambda: 0
        self._free_callback = self._on_free  # one bound method for every weakref

    def _on_free(self, ref: _StorageRef) -> None:
        entry = self.live.pop(ref.key, None)
        if entry is not None:
            self.live_bytes -= entry[1]
            self.freed_since += entry[1]
            self.free_events.append((entry[0], entry[1], self.op_counter()))

    def register(self, st: torch.UntypedStorage, is_meta: bool = False) -> tuple[int, int, bool]:
        """(sid, nbytes, is_new) for a storage; unseen storages start being tracked. Meta
        storages and a wrapper subclass's storage own no memory and count 0 bytes."""
        key = st._cdata  # == torch._C._storage_address of any tensor on it
        entry = self.live.get(key)
        if entry is not None:
            return entry[0], entry[1], False
        sid = self.next_sid
        self.next_sid += 1
        nbytes = 0 if is_meta else st.nbytes()
        if nbytes:  # inline: this runs for every new storage
            try:
                st.data_ptr()
            except RuntimeError:  # a wrapper subclass's storage: a size, but no data
                nbytes = 0
        ref = _StorageRef(st, self._free_callback)
        ref.key = key
        self.live[key] = (sid, nbytes, ref)
        self.live_bytes += nbytes
        return sid, nbytes, True

    def register_input(self, st: torch.UntypedStorage, is_meta: bool = False) -> int:
        sid, nbytes, new = self.register(st, is_meta)
        if new:
            self.late_seen.append((sid, nbytes, self.op_counter()))
        return sid

    def sid_of(self, t: torch.Tensor) -> int | None:
        try:
            entry = self.live.get(t.untyped_storage()._cdata)
        except (RuntimeError, NotImplementedError):
            return None
        return entry[0] if entry else None

    def sids_of(self, t: torch.Tensor) -> list[int]:
        """Storage ids that stand for ``t``: its own, and its local tensor's for a wrapper subclass
        (ops on the wrapper name the first, FSDP2's own collectives the second)."""
        return [sid for x in (t, local_tensor(t)) if x is not None and (sid := self.sid_of(x)) is not None]

    def register_tensors(self, tensors: Iterable[torch.Tensor]) -> None:
        for t in tensors:
            try:
                self.register(t.untyped_storage(), t.is_meta)
            except (RuntimeError, NotImplementedError):
                continue

    def forget_except(self, keep: set[int]) -> None:
        """Stop tracking every storage whose key is not in ``keep`` (dropping its weakref, so no free
        callback fires). A step then counts the model's state plus what the step itself touches, as
        MemTracker does; an old storage the step uses again is re-registered as pre-existing."""
        for key in [k for k in self.live if k not in keep]:
            entry = self.live.pop(key)
            self.live_bytes -= entry[1]

    def snapshot(self) -> dict[int, int]:
        """sid -> nbytes of every live storage: the baseline at the start of a step."""
        return {sid: nb for sid, nb, _ in self.live.values()}

    def take_freed(self) -> int:
        f = self.freed_since
        self.freed_since = 0
        return f
