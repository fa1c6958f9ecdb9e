"""Stable node keys: "the same node" across steps of a dynamic graph.

Format (documented in docs/node-keys.md)::

    <module>:<phase>:<op>#<occurrence>

``module`` is the fully qualified module name (``-`` when the op ran outside every module, and
the empty string for the root model itself), ``phase`` one of forward/backward/optimizer/other,
``op`` the overload name (``aten.addmm.default``) and ``occurrence`` counts earlier nodes of the
step with the same (module, phase, op), from 0. Insertions elsewhere in the step never shift a key,
which is what breakpoints and step diffs need.
"""
from __future__ import annotations

from dataclasses import dataclass

NO_MODULE = "-"


@dataclass(frozen=True, slots=True)
class NodeKey:
    module: str | None
    phase: str
    op: str
    occurrence: int

    def __str__(self) -> str:
        return format_key(self.module, self.phase, self.op, self.occurrence)


def format_key(module: str | None, phase: str, op: str, occurrence: int) -> str:
    return f"{NO_MODULE if module is None else module}:{phase}:{op}#{occurrence}"


def parse_key(key: str) -> NodeKey:
    """Inverse of :func:`format_key`; raises ValueError with the expected format on bad input."""
    head, sep, occ = key.rpartition("#")
    parts = head.split(":")
    if not sep or len(parts) != 3 or not occ.isdigit():
        raise ValueError(
            f"bad node key {key!r}: expected '<module>:<phase>:<op>#<n>', "
            "e.g. 'encoder.layers.0.linear1:forward:aten.addmm.default#0'"
        )
    module, phase, op = parts
    return NodeKey(None if module == NO_MODULE else module, phase, op, int(occ))


class KeyCounter:
    """Assigns occurrence indices in op order."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[tuple[str | None, str, str], int] = {}

    def next(self, module: str | None, phase: str, op: str) -> str:
        k = (module, phase, op)
        n = self._seen.get(k, 0)
        self._seen[k] = n + 1
        return format_key(module, phase, op, n)
