"""Dataflow as a reader should see it: views wired to the op that made them, each tensor counted once.

The builder stores edges by storage id (saved tensors come back in backward as new tensor objects,
so storage is the only identity that survives). Two consequences are corrected here, at read time:

- A view op (``view``, ``transpose``, ``split``...) shares its input's storage, so every later reader
  of that storage gets an edge from the storage's *writer*, and the view itself has no consumers.
  :func:`rewire` hands each reader to the view whose output it reads, told apart by shape: among the
  earlier views of the storage with the reader's input shape, the first one nobody has read yet
  (``q, k, v = x[0], x[1], x[2]`` then ``q.view(...)``, ``k.view(...)`` read them in order), else the
  latest one, else the writer. The writer (not a view) keeps the readers of its own shape.
- One output read by three ops is three edges; merged edges between two boxes count each
  (source node, storage, bytes) once: the step file's ``agg_op_edges`` and ``agg_module_edges``
  (``AGGREGATE_QUERIES`` in gprof/store/step_file.py) are summed that way when the step is written,
  and node-level edges are deduplicated by :func:`wired_edges`.

A view is recognised from the data alone (readers do not import torch): it outputs a storage it
also reads and is not an in-place op (an in-place op's name ends in ``_``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gprof.store.decode import decoding
from gprof.store.queries.nodes import node_briefs
from gprof.store.step_file import StepReader, decode_tensors

#: readers of one storage looked at per writer: bounds a request on a storage read by very many ops
_MAX_READERS = 20_000


def _is_inplace(op: str) -> bool:
    parts = op.split(".")
    return len(parts) > 1 and parts[1].endswith("_")


def rewire(writer: int, readers: Sequence[tuple[int, str, str, str]], storage: int) -> dict[int, int]:
    """reader idx -> the node it really reads ``storage`` from (``writer`` or one of the views).

    ``readers`` are (idx, op, inputs, outputs) of every node with an edge (writer -> idx, storage),
    encoded as stored; views among them are readers too (of their base)."""
    views: list[tuple[int, tuple[int, ...]]] = []  # (idx, output shape on storage), in order
    read: set[int] = set()
    out: dict[int, int] = {}
    for idx, op, inputs, outputs in sorted(readers):
        shapes = [t.shape for t in decode_tensors(inputs) if t.storage == storage]
        src = writer
        for shape in shapes[:1]:
            same = [v for v, s in views if s == shape]
            if same:
                unread = [v for v in same if v not in read]
                src = unread[0] if unread else same[-1]
        out[idx] = src
        read.add(src)
        if not _is_inplace(op):
            outs = [t.shape for t in decode_tensors(outputs) if t.storage == storage]
            if outs:
                views.append((idx, outs[0]))
    return out


def _readers(r: StepReader, writer: int, storage: int) -> list[tuple[int, str, str, str]]:
    return r.sql("SELECT n.idx, n.op, n.inputs, n.outputs FROM edges e JOIN nodes n ON n.idx = e.dst "
                 "WHERE e.src = ? AND e.storage IS ? ORDER BY n.idx LIMIT ?", (writer, storage, _MAX_READERS))


def _wiring(r: StepReader, writer: int, storage: int | None) -> dict[int, int]:
    if storage is None:
        return {}
    with decoding(r.path, f"the readers of storage {storage}"):
        return rewire(writer, _readers(r, writer, storage), storage)


def wired_neighbours(r: StepReader, idx: int) -> tuple[list[int], list[int]]:
    """(producers, consumers) of a node with views wired to the op that made them, sorted."""
    edges = r.sql("SELECT src, dst, storage FROM edges WHERE src = ? OR dst = ?", (idx, idx))
    cache: dict[tuple[int, int | None], dict[int, int]] = {}

    def wiring(writer: int, storage: int | None) -> dict[int, int]:
        if (writer, storage) not in cache:
            cache[(writer, storage)] = _wiring(r, writer, storage)
        return cache[(writer, storage)]

    producers: set[int] = set()
    consumers: set[int] = set()
    for src, dst, storage in edges:
        if dst == idx:  # made by the writer or by one of its views; if this node is a view, its readers
            w = wiring(src, storage)
            producers.add(w.get(idx, src))
            consumers.update(d for d, s in w.items() if s == idx)
        elif wiring(idx, storage).get(dst, idx) == idx:  # read directly, not through a view of it
            consumers.add(dst)
    return sorted(producers), sorted(consumers)


def wired_edges(r: StepReader, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Node-level edge rows (src, dst, storage, nbytes, src module, dst module, src phase, dst phase,
    src op, dst op), as ``direct_edges`` returns them, with each reader's source moved from the
    storage's writer to the view it reads (:func:`rewire`), and each (src, dst, storage) once. A view
    the rows do not name is looked up, so an expanded module's reader links to a view made elsewhere."""
    wiring = {(src, storage): _wiring(r, src, storage) for src, _, storage, *_ in rows}
    # (module, phase, op) of every node the rows name; a view outside them is looked up
    places = {row[0]: (row[4], row[6], row[8]) for row in rows} | {row[1]: (row[5], row[7], row[9]) for row in rows}
    moved = {wiring[(src, storage)].get(dst, src) for src, dst, storage, *_ in rows} - places.keys()
    places |= {idx: (module, phase, op) for idx, op, module, phase in node_briefs(r, sorted(moved))}
    out: dict[tuple[int, int, int | None], tuple[Any, ...]] = {}
    for src, dst, storage, nbytes, _, bm, _, bp, _, bop in rows:
        real = wiring[(src, storage)].get(dst, src)
        if real == dst:
            continue
        am, ap, aop = places[real]
        out.setdefault((real, dst, storage), (real, dst, storage, nbytes, am, bm, ap, bp, aop, bop))
    return list(out.values())
