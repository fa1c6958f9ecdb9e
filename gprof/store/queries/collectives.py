"""What cross-rank analysis reads of one rank's step: every node's start, duration and key, and in
full only the few nodes that need it (collectives, and the gradient writes that name DDP's buckets).

Decoding every node of a million-node rank into ``Node`` objects took 16 s for the tab's ranks
view (benchmarks/RESULTS.md, "TensorBoard tab latency"); the timings are three integers and a
string per node, and the tensors of the other nodes are read only where an asynchronous
collective's completion must be found (:meth:`RankStep.first_touch`), a few ops after it.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from gprof.graph.model import Node
from gprof.store.decode import decoding
from gprof.store.step_file import NODE_COLUMNS, StepReader

#: the nodes read in full: collectives (``"kind"`` in attrs) and backward ops attributed to a
#: parameter (``gprof.graph.collectives.BucketTracker`` names buckets from them)
_FULL = ("SELECT " + ", ".join(NODE_COLUMNS) + " FROM nodes WHERE (attrs IS NOT NULL AND json_type(attrs, '$.kind') "
         "IS NOT NULL) OR (phase = 'backward' AND param IS NOT NULL) ORDER BY idx")
_FIRST_CHUNK, _MAX_CHUNK = 256, 65_536


@dataclass
class RankStep:
    """One rank's nodes in start order (``idx``, ``key``, ``start``, ``dur`` as parallel lists) and the
    nodes read in full, by idx. Valid while its reader is open."""

    reader: StepReader
    idx: list[int]
    key: list[str]
    start: list[int]
    dur: list[int]
    full: dict[int, Node]

    def first_touch(self, pos: int, storages: set[int]) -> int | None:
        """The position (in start order, from ``pos`` on) of the first node that reads or writes one of
        ``storages``, or None. Tensors are read in growing chunks: the answer is usually a few ops on."""
        chunk = _FIRST_CHUNK
        while pos < len(self.idx):
            ids = self.idx[pos:pos + chunk]
            rows = self.reader.sql("SELECT idx, inputs || ';' || outputs FROM nodes "
                                   "WHERE idx IN (SELECT value FROM json_each(?))", (json.dumps(ids),))
            tensors = dict(rows)
            for k, i in enumerate(ids):
                if _storages(self.reader, i, tensors.get(i, "")) & storages:
                    return pos + k
            pos += len(ids)
            chunk = min(chunk * 4, _MAX_CHUNK)
        return None


def _storages(reader: StepReader, idx: int, encoded: str) -> set[int]:
    """The storage ids in an encoded tensor list (``step_file.encode_tensors``: storage is the last field)."""
    with decoding(reader.path, f"node {idx}'s tensors"):
        return {int(item.rsplit("|", 1)[1]) for item in encoded.split(";") if item}


def rank_step(reader: StepReader) -> RankStep:
    """The step's timings in (start, idx) order, and its collectives and parameter-gradient nodes in full."""
    rows: Sequence[tuple[int, str, int, int]] = reader.sql(
        "SELECT idx, key, COALESCE(start_ns, 0), COALESCE(dur_ns, 0) FROM nodes ORDER BY 3, 1")
    idx, key, start, dur = (list(col) for col in zip(*rows)) if rows else ([], [], [], [])
    full = {n.idx: n for n in reader.decode_nodes(reader.sql(_FULL))}
    return RankStep(reader, idx, key, start, dur, full)
