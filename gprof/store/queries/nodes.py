"""Single nodes and small sets of them, read through the indexes: the node page, neighbours,
forward/backward partners, one module's own nodes and edges, the terminal UI's paged table."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gprof.graph.model import Node
from gprof.store.decode import CorruptStepError
from gprof.store.step_file import NODE_COLUMNS, StepReader

#: sortable node-table columns: label -> column
SORT_COLUMNS = {"idx": "idx", "op": "op", "phase": "phase", "module": "module", "time": "dur_ns",
                "alloc": "alloc_bytes", "live": "live_bytes", "flops": "flops"}
#: bound parameters per IN (...) list, well under SQLite's limit
_CHUNK = 500


@dataclass
class NodeQuery:
    """Filter, sort and page of a node table."""

    text: str = ""
    module: str | None = None  # None: every node; "": the root and everything inside it
    sort: str = "idx"
    descending: bool = False
    offset: int = 0


def _where(q: NodeQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if q.module:
        clauses.append("(module = ? OR (module >= ? AND module < ?))")  # '.' + 1 == '/': an index range
        params += [q.module, q.module + ".", q.module + "/"]
    elif q.module == "":
        clauses.append("module IS NOT NULL")
    if q.text:
        like = f"%{q.text}%"
        clauses.append("(op LIKE ? OR module LIKE ? OR key LIKE ? OR source LIKE ?)")
        params += [like] * 4
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@dataclass(frozen=True)
class UndecodedNode:
    """A node row that does not decode, in its place on a page: its index, its op as stored (None when
    that is not text) and the store's error, which names the file, the node and what is wrong."""

    idx: int
    op: str | None
    error: CorruptStepError

    @property
    def reason(self) -> str:
        """What is wrong with the row, without the file and node the error also names."""
        return self.error.cause or self.error.problem


def _page_rows(r: StepReader, q: NodeQuery, size: int) -> list[tuple]:
    where, params = _where(q)
    col = SORT_COLUMNS[q.sort]
    order = f"{col} {'DESC' if q.descending else 'ASC'}" + (", idx" if col != "idx" else "")
    return r.sql(f"SELECT {', '.join(NODE_COLUMNS)} FROM nodes{where} ORDER BY {order} LIMIT ? OFFSET ?",
                 (*params, size, q.offset))


def node_page(r: StepReader, q: NodeQuery, size: int) -> list[Node]:
    """One page of the nodes matching ``q``, in its order (ties by index); CorruptStepError when a
    row of it does not decode."""
    return r.decode_nodes(_page_rows(r, q, size))


def node_page_rows(r: StepReader, q: NodeQuery, size: int) -> list[Node | UndecodedNode]:
    """:func:`node_page`, row by row: a row that does not decode is an :class:`UndecodedNode` in its
    place, so one bad row costs only itself and the page's other nodes still show."""
    return decode_rows(r, _page_rows(r, q, size))


def decode_rows(r: StepReader, rows: Iterable[Sequence[Any]]) -> list[Node | UndecodedNode]:
    """Rows of ``NODE_COLUMNS`` as nodes, each row on its own: one that does not decode is an
    :class:`UndecodedNode` (its idx, and its op where that reads as text) instead of failing the rest."""
    out: list[Node | UndecodedNode] = []
    for row in rows:
        try:
            out += r.decode_nodes([row])
        except CorruptStepError as e:
            op = row[NODE_COLUMNS.index("op")]
            out.append(UndecodedNode(row[0], op if isinstance(op, str) else None, e))
    return out


def count_matching(r: StepReader, q: NodeQuery) -> int:
    """How many nodes ``q``'s module and filter keep (its sort and offset play no part)."""
    where, params = _where(q)
    return r.sql(f"SELECT COUNT(*) FROM nodes{where}", tuple(params))[0][0]


def node_idx(r: StepReader, key: str) -> int | None:
    """The index of the node with stable key ``key``, if the step has one."""
    rows = r.sql("SELECT idx FROM nodes WHERE key = ?", (key,))
    return rows[0][0] if rows else None


def backward_partners(r: StepReader, idx: int, limit: int) -> list[tuple[int, str]]:
    """(idx, op) of the backward nodes whose forward partner is ``idx``, first ``limit`` by index."""
    return [(i, op) for i, op in r.sql("SELECT idx, op FROM nodes WHERE fwd = ? ORDER BY idx LIMIT ?", (idx, limit))]


def neighbours(r: StepReader, idx: int) -> tuple[list[int], list[int]]:
    """(producers, consumers) of a node: the other ends of its dataflow edges, sorted."""
    edges = r.edges(idx)
    return (sorted({e.src for e in edges if e.dst == idx}), sorted({e.dst for e in edges if e.src == idx}))


def node_briefs(r: StepReader, idxs: Iterable[int]) -> list[tuple[int, str, str | None, str]]:
    """(idx, op, module, phase) of the given nodes that exist, looked up by index in chunks."""
    ids = list(idxs)
    out: list[tuple[int, str, str | None, str]] = []
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        out += r.sql(f"SELECT idx, op, module, phase FROM nodes WHERE idx IN ({','.join('?' * len(chunk))})",
                     tuple(chunk))
    return out


def count_in_phases(r: StepReader, phases: Sequence[str]) -> int:
    """How many nodes belong to one of ``phases``."""
    return r.sql(f"SELECT COUNT(*) FROM nodes WHERE phase IN ({','.join('?' * len(phases))})", tuple(phases))[0][0]


def _module_where(column: str, module: str | None) -> tuple[str, tuple]:
    return (f"{column} IS NULL", ()) if module is None else (f"{column} = ?", (module,))


def direct_nodes(r: StepReader, module: str | None) -> list[tuple]:
    """(idx, op, phase, dur_ns, device_ns, alloc_bytes, live_bytes, flops, fwd, key) of the nodes whose
    innermost module is exactly ``module`` (None: outside every module), by index."""
    where, params = _module_where("module", module)
    return r.sql("SELECT idx, op, phase, dur_ns, device_ns, alloc_bytes, live_bytes, flops, fwd, key FROM nodes "
                 f"WHERE {where} ORDER BY idx", params)


def direct_edges(r: StepReader, module: str | None) -> list[tuple]:
    """Edges with at least one end directly in ``module``: (src, dst, storage, nbytes, src module,
    dst module, src phase, dst phase, src op, dst op)."""
    where_a, params = _module_where("a.module", module)
    where_b, _ = _module_where("b.module", module)
    head = ("SELECT e.src, e.dst, e.storage, e.nbytes, a.module, b.module, a.phase, b.phase, a.op, b.op "
            "FROM nodes {x} JOIN edges e ON e.{xe} = {x}.idx JOIN nodes {y} ON {y}.idx = e.{ye} WHERE {w}")
    q = (head.format(x="a", xe="src", y="b", ye="dst", w=where_a) + " UNION "
         + head.format(x="b", xe="dst", y="a", ye="src", w=where_b))
    return r.sql(q, params + params)


def direct_op_stats(r: StepReader, module: str | None) -> list[tuple]:
    """(op, phase, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops) of a module's own ops,
    through the module index (for before the step-wide op table is cached)."""
    where, params = _module_where("module", module)
    return r.sql("SELECT op, phase, COUNT(*), SUM(dur_ns), SUM(device_ns), SUM(alloc_bytes), MAX(live_bytes), "
                 f"SUM(flops) FROM nodes WHERE {where} GROUP BY op, phase", params)


def direct_op_edges(r: StepReader, module: str | None) -> list[tuple]:
    """A module's own ops' edges merged by op: (outgoing, this op, this phase, other module, other
    phase, other op, bytes, count), where outgoing is 1 for edges leaving the module's ops; each tensor
    (source node, storage, bytes) once per pair of op groups, as in the step file's ``agg_op_edges``."""
    where, params = _module_where("a.module", module)
    head = ("SELECT {out}, op, phase, module, ophase, oop, SUM(nbytes), COUNT(*) FROM (SELECT DISTINCT a.op, "
            "a.phase, b.module, b.phase AS ophase, b.op AS oop, e.src, e.storage, e.nbytes FROM nodes a "
            "JOIN edges e ON e.{ae} = a.idx JOIN nodes b ON b.idx = e.{be} WHERE " + where +
            ") GROUP BY 2, 3, 4, 5, 6")
    q = head.format(out=1, ae="src", be="dst") + " UNION ALL " + head.format(out=0, ae="dst", be="src")
    return r.sql(q, params + params)
