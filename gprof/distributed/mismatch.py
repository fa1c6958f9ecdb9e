"""Mismatched collective sequences across ranks: the classic cause of distributed hangs.

Every rank of a process group must issue the same collectives in the same order with the same
shapes and dtypes. Backends do not check: gloo pairs calls by order and silently reduces an
``f32[2,4]`` with an ``f32[8]``, hangs when a rank skipped one, or aborts the process. Comparing
the recorded sequences names the first call where two ranks part ways, with both source lines.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gprof.graph.collectives import LOCAL_OPS
from gprof.graph.formatting import dtype_abbrev
from gprof.graph.model import Node


@dataclass(frozen=True)
class Call:
    """One collective issued by one rank, as compared across ranks."""

    rank: int
    index: int
    node: Node

    @property
    def signature(self) -> tuple:
        a = self.node.attrs
        return (a.get("kind"), tuple(tuple(s) for s in a.get("shapes", ())), tuple(a.get("dtypes", ())))

    @property
    def where(self) -> tuple:
        return (self.signature, self.node.source)

    def describe(self) -> str:
        a = self.node.attrs
        tensors = ", ".join(f"{dtype_abbrev(d)}[{','.join(map(str, s))}]"
                            for s, d in zip(a.get("shapes", ()), a.get("dtypes", ())))
        return f"{a.get('kind')}({tensors})"

    def to_json(self) -> dict[str, Any]:
        n = self.node
        return {"rank": self.rank, "index": self.index, "key": n.key, "op": n.op, "kind": n.attrs.get("kind"),
                "shapes": n.attrs.get("shapes", []), "dtypes": n.attrs.get("dtypes", []),
                "source": n.source, "module": n.module, "phase": n.phase, "call": self.describe()}


def calls_by_group(rank: int, nodes: Sequence[Node]) -> dict[str, list[Call]]:
    """A rank's collectives in issue order, per process group; local waits left out."""
    out: dict[str, list[Call]] = {}
    for n in sorted(nodes, key=lambda n: n.idx):
        kind = n.attrs.get("kind")
        if kind is None or kind in LOCAL_OPS:
            continue
        seq = out.setdefault(str(n.attrs.get("group", "default")), [])
        seq.append(Call(rank, len(seq), n))
    return out


def _side(rank: int, seq: list[Call], i: int) -> dict[str, Any]:
    if i < len(seq):
        return seq[i].to_json()
    last = seq[-1].to_json() if seq else None
    return {"rank": rank, "index": i, "missing": True, "issued": len(seq), "last": last}


def compare(a_rank: int, a: list[Call], b_rank: int, b: list[Call]) -> dict[str, Any] | None:
    """The first point where two ranks' sequences in one group disagree, or None.

    The same collective issued from different lines is fine (``if rank == 0: broadcast(x)``); a
    call that only one rank issued is found by realigning on (signature, source line)."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i].where == b[i].where:
            continue
        if [c.where for c in a[i + 1:]] == [c.where for c in b[i:]]:
            return _mismatch("missing", a_rank, a, b_rank, b, i, extra=a_rank)
        if [c.where for c in b[i + 1:]] == [c.where for c in a[i:]]:
            return _mismatch("missing", a_rank, a, b_rank, b, i, extra=b_rank)
        if a[i].signature == b[i].signature:
            continue
        if sorted(c.signature for c in a) == sorted(c.signature for c in b):
            kind = "order"
        elif a[i].signature[0] != b[i].signature[0]:
            kind = "op"
        elif a[i].signature[1] != b[i].signature[1]:
            kind = "shape"
        else:
            kind = "dtype"
        return _mismatch(kind, a_rank, a, b_rank, b, i)
    if len(a) != len(b):
        return _mismatch("count", a_rank, a, b_rank, b, n, extra=a_rank if len(a) > len(b) else b_rank)
    return None


def _mismatch(kind: str, a_rank: int, a: list[Call], b_rank: int, b: list[Call], i: int,
              extra: int | None = None) -> dict[str, Any]:
    sides = [_side(a_rank, a, i), _side(b_rank, b, i)]
    if kind == "missing":
        has, lacks = (a_rank, b_rank) if extra == a_rank else (b_rank, a_rank)
        seq = a if extra == a_rank else b
        other = b if extra == a_rank else a
        message = (f"rank {lacks} never issued collective #{i} {seq[i].describe()} that rank {has} issued; "
                   f"its collective #{i} is {other[i].describe()} instead, so every later call is paired wrongly")
    elif kind == "count":
        longer, shorter = (a, b) if len(a) > len(b) else (b, a)
        fewer = b_rank if extra == a_rank else a_rank
        message = (f"rank {extra} issued {len(longer)} collectives and rank {fewer} {len(shorter)}: "
                   f"#{i} {longer[i].describe()} has no partner (a hang)")
    else:
        message = (f"collective #{i} differs in {kind}: rank {a_rank} {a[i].describe()} vs "
                   f"rank {b_rank} {b[i].describe()}")
    return {"type": kind, "index": i, "message": message, "ranks": sides}


def find_mismatches(calls: dict[int, dict[str, list[Call]]], world_size: int) -> list[dict[str, Any]]:
    """Compare every rank against the lowest rank, per group. A group as large as the world must
    appear on every rank; a subgroup is compared among the ranks that used it."""
    out = []
    groups = sorted({g for per_rank in calls.values() for g in per_rank})
    for group in groups:
        users = [r for r in sorted(calls) if group in calls[r]]
        size = next((c.node.attrs.get("group_size") for r in users for c in calls[r][group][:1]), None)
        ranks = sorted(calls) if size is not None and size >= world_size else users
        ref = ranks[0]
        for r in ranks[1:]:
            m = compare(ref, calls[ref].get(group, []), r, calls[r].get(group, []))
            if m is not None:
                m["group"] = group
                out.append(m)
    return out
