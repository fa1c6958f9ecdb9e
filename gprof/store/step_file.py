"""One SQLite file per (rank, step).

SQLite because readers (the TensorBoard tab, the TUI) must pull one node or one module's nodes out
of a million-node step without loading it, and because a single file can be written to a temp name
and renamed into place, so a half-written step is never visible.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from gprof.analyses.opclass import OpFacts, facts_from_json
from gprof.graph.model import (
    Edge,
    MemorySummary,
    ModuleInfo,
    Node,
    StepGraph,
    StepMeta,
    TensorMeta,
)
from gprof.store.decode import CorruptStepError, StoreError, decode_record, decoding, load_json
from gprof.store.temp_files import create_temp, place_new

SCHEMA_VERSION = 1
FORMAT_NAME = "torch-gprof step"

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes(
    idx INTEGER PRIMARY KEY, key TEXT NOT NULL, op TEXT NOT NULL, phase TEXT NOT NULL, module TEXT,
    inputs TEXT NOT NULL, outputs TEXT NOT NULL, start_ns INTEGER, dur_ns INTEGER, device_ns INTEGER,
    alloc_bytes INTEGER, freed_bytes INTEGER, live_bytes INTEGER, flops INTEGER, source TEXT,
    thread INTEGER, fwd INTEGER, param TEXT, grad_fn TEXT, attrs TEXT);
CREATE TABLE edges(src INTEGER NOT NULL, dst INTEGER NOT NULL, storage INTEGER, nbytes INTEGER);
CREATE TABLE modules(fqn TEXT PRIMARY KEY, type TEXT, builtin INTEGER NOT NULL DEFAULT 0);
CREATE TABLE analyses(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE aggregates(op TEXT PRIMARY KEY, count INTEGER, total_ns INTEGER);
"""
#: Aggregates every viewer needs, by table name. A step of :data:`PRECOMPUTE_MIN_NODES` nodes or more
#: has them computed once when it is written (in SQLite, so a million-node step costs seconds at capture
#: instead of a cold viewer spending them per request), with its indexes; a smaller step, and a file
#: written before they existed, gets them as temporary views when it is opened (milliseconds per query
#: there, and the ~5 ms they cost a GPT-2-like step's write stay off the profiled run: issue 17), so
#: readers always query these names.
AGGREGATE_QUERIES = {
    "agg_op_stats": """
    SELECT module, phase, op, COUNT(*) AS count, SUM(dur_ns) AS dur_ns, SUM(device_ns) AS device_ns,
           SUM(alloc_bytes) AS alloc_bytes, MAX(live_bytes) AS max_live_bytes, SUM(flops) AS flops,
           MIN(dur_ns) AS min_dur_ns, MAX(dur_ns) AS max_dur_ns
    FROM nodes GROUP BY 1, 2, 3""",
    # dataflow merged per pair of groups counts each tensor (source node, storage, bytes) once, however
    # many ops of the destination group read it: one 16 KiB output read by three ops is 16 KiB, not 48
    "agg_op_edges": """
    SELECT src_module, src_phase, src_op, dst_module, dst_phase, dst_op, SUM(nbytes) AS nbytes, COUNT(*) AS count
    FROM (SELECT DISTINCT a.module AS src_module, a.phase AS src_phase, a.op AS src_op,
                 b.module AS dst_module, b.phase AS dst_phase, b.op AS dst_op, e.src, e.storage, e.nbytes
          FROM edges e JOIN nodes a ON a.idx = e.src JOIN nodes b ON b.idx = e.dst)
    GROUP BY 1, 2, 3, 4, 5, 6""",
    # the same per (module, phase) pair, between different pairs: the collapsed graph's edges
    "agg_module_edges": """
    SELECT src_module, src_phase, dst_module, dst_phase, SUM(nbytes) AS nbytes, COUNT(*) AS count
    FROM (SELECT DISTINCT a.module AS src_module, a.phase AS src_phase, b.module AS dst_module,
                 b.phase AS dst_phase, e.src, e.storage, e.nbytes
          FROM edges e JOIN nodes a ON a.idx = e.src JOIN nodes b ON b.idx = e.dst
          WHERE a.module IS NOT b.module OR a.phase != b.phase)
    GROUP BY 1, 2, 3, 4""",
}
PRECOMPUTE_MIN_NODES = 5_000
_INDEXES = """
CREATE INDEX nodes_module ON nodes(module);
CREATE INDEX nodes_key ON nodes(key);
CREATE INDEX nodes_fwd ON nodes(fwd);
CREATE INDEX edges_src ON edges(src);
CREATE INDEX edges_dst ON edges(dst);
"""

NODE_COLUMNS = (
    "idx", "key", "op", "phase", "module", "inputs", "outputs", "start_ns", "dur_ns", "device_ns",
    "alloc_bytes", "freed_bytes", "live_bytes", "flops", "source", "thread", "fwd", "param", "grad_fn",
    "attrs",
)
_NODE_SELECT = "SELECT " + ", ".join(NODE_COLUMNS) + " FROM nodes"


#: The meta and memory fields every file of schema v1 has had since its first writer: a file
#: without one is corrupt. Fields added since have defaults, so older files still read, and fields
#: this reader does not know (a newer writer's) are ignored.
V1_META_FIELDS = ("run", "step", "rank", "world_size", "complete", "error", "torch_version", "hostname", "pid",
                  "created", "wall_ns", "node_count", "aggregate_only", "devices", "extra")
V1_MEMORY_FIELDS = ("peak_bytes", "peak_node", "by_category", "saved_activations", "baseline_bytes")


# ---------------------------------------------------------------- tensor meta encoding
# "dtype|device|d0,d1,...|nbytes|storage" per tensor, ';' between tensors. Compact and quick to
# build for a million nodes, unlike JSON.

#: encoded "dtype|device|shape|nbytes|" by (shape, dtype, device, nbytes): a step has few distinct
#: tensor kinds, and formatting each afresh was a third of writing a node row; emptied when it grows
#: past _PREFIX_CAP (a run whose shapes never repeat)
_PREFIXES: dict[tuple, str] = {}
_PREFIX_CAP = 100_000


def encode_tensors(metas: Sequence[TensorMeta]) -> str:
    out = []
    for m in metas:
        key = (m.shape, m.dtype, m.device, m.nbytes)
        prefix = _PREFIXES.get(key)
        if prefix is None:
            if len(_PREFIXES) >= _PREFIX_CAP:
                _PREFIXES.clear()
            prefix = _PREFIXES[key] = f"{m.dtype}|{m.device}|{','.join(map(str, m.shape))}|{m.nbytes}|"
        out.append(prefix + str(m.storage))
    return ";".join(out)


def decode_tensors(text: str) -> tuple[TensorMeta, ...]:
    if not text:
        return ()
    out = []
    for item in text.split(";"):
        dtype, device, shape, nbytes, storage = item.split("|")
        out.append(TensorMeta(
            tuple(int(d) for d in shape.split(",")) if shape else (), dtype, device, int(nbytes), int(storage)
        ))
    return tuple(out)


def node_row(n: Node, inputs: str | None = None, outputs: str | None = None) -> tuple:
    return (
        n.idx, n.key, n.op, n.phase, n.module,
        encode_tensors(n.inputs) if inputs is None else inputs,
        encode_tensors(n.outputs) if outputs is None else outputs,
        n.start_ns, n.dur_ns, n.device_ns, n.alloc_bytes, n.freed_bytes, n.live_bytes, n.flops,
        n.source, n.thread, n.fwd, n.param, n.grad_fn, json.dumps(n.attrs) if n.attrs else None,
    )


def row_to_node(row: Sequence[Any], rank: int) -> Node:
    (idx, key, op, phase, module, inputs, outputs, start_ns, dur_ns, device_ns, alloc, freed, live,
     flops, source, thread, fwd, param, grad_fn, attrs) = row
    return Node(
        idx=idx, key=key, op=op, phase=phase, module=module,
        inputs=decode_tensors(inputs), outputs=decode_tensors(outputs),
        start_ns=start_ns or 0, dur_ns=dur_ns or 0, device_ns=device_ns,
        alloc_bytes=alloc or 0, freed_bytes=freed or 0, live_bytes=live or 0, flops=flops or 0,
        source=source, thread=thread or 0, rank=rank, fwd=fwd, param=param, grad_fn=grad_fn,
        attrs=json.loads(attrs) if attrs else {},
    )


# ---------------------------------------------------------------- writing

def _shallow_dict(obj: Any) -> dict[str, Any]:
    """A flat dataclass as a dict for JSON. ``dataclasses.asdict`` deep-copies every list, which for
    the memory curve cost more than writing the step's nodes."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


class StepWriter:
    """Streams a step into a temp file next to ``path``; :meth:`commit` renames it into place.

    Nodes can be added in chunks, so a million-node step never needs to sit in memory as objects.
    """

    def __init__(self, path: str | os.PathLike[str], fallback: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        #: where :meth:`commit` puts the step when ``path`` already holds another session's file
        #: (None: ``path`` is replaced)
        self.fallback = None if fallback is None else Path(fallback)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = create_temp(self.path)
        try:
            self._db = sqlite3.connect(self._tmp)
            self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
            self._db.execute("BEGIN")
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def add_node_rows(self, rows: Iterable[tuple]) -> None:
        self._db.executemany(f"INSERT INTO nodes VALUES ({','.join('?' * len(NODE_COLUMNS))})", rows)

    def add_nodes(self, nodes: Iterable[Node]) -> None:
        self.add_node_rows(node_row(n) for n in nodes)

    def add_edges(self, edges: Iterable[Edge | tuple]) -> None:
        self._db.executemany(
            "INSERT INTO edges VALUES (?,?,?,?)",
            ((e.src, e.dst, e.storage, e.nbytes) if isinstance(e, Edge) else e for e in edges),
        )

    def bump_live_bytes(self, start: int, stop: int, nbytes: int) -> None:
        """Add ``nbytes`` to live_bytes of nodes [start, stop) (storages found to predate the step)."""
        self._db.execute("UPDATE nodes SET live_bytes = live_bytes + ? WHERE idx >= ? AND idx < ?",
                         (nbytes, start, stop))

    def set_modules(self, modules: Iterable[ModuleInfo]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO modules VALUES (?,?,?)",
                             ((m.fqn, m.type, int(m.builtin)) for m in modules))

    def set_analysis(self, name: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO analyses VALUES (?,?)", (name, json.dumps(value)))

    def set_aggregates(self, aggregates: dict[str, list[int]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO aggregates VALUES (?,?,?)", ((k, v[0], v[1]) for k, v in aggregates.items())
        )

    def commit(self, meta: StepMeta, memory: MemorySummary) -> Path:
        meta_items = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "meta": _shallow_dict(meta),
            "memory": _shallow_dict(memory),
        }
        self._db.executemany("INSERT INTO meta VALUES (?,?)", ((k, json.dumps(v)) for k, v in meta_items.items()))
        precompute = meta.node_count >= PRECOMPUTE_MIN_NODES
        if precompute:
            self._db.executescript(_INDEXES)
            for name, query in AGGREGATE_QUERIES.items():
                self._db.execute(f"CREATE TABLE {name} AS {query}")
        self._write_op_facts("agg_op_stats" if precompute else "nodes")
        self._db.commit()
        self._db.close()
        if self.fallback is None:
            os.replace(self._tmp, self.path)
        elif not place_new(self._tmp, self.path):  # another session's step: keep it, go beside it
            self.path = self.fallback
            os.replace(self._tmp, self.path)
        return self.path

    def _write_op_facts(self, ops_from: str) -> None:
        """Torch's facts about each op of the step (tags, alias-only schema, Inductor's verdict), from
        the source the analyses use in this process, so a reader re-running them for another fusion
        target (gprof/store/queries/retarget.py) classifies ops as here without importing torch. No
        table where no source is installed (a step written without torch)."""
        from gprof.analyses.opclass import facts_to_json, op_facts_of

        facts = op_facts_of([op for (op,) in self._db.execute(f"SELECT DISTINCT op FROM {ops_from}")])
        if facts:
            self._db.execute("CREATE TABLE op_facts(op TEXT PRIMARY KEY, facts TEXT NOT NULL)")
            self._db.executemany("INSERT INTO op_facts VALUES (?,?)",
                                 ((op, json.dumps(facts_to_json(f))) for op, f in facts.items()))

    def abort(self) -> None:
        try:
            self._db.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def write_step(graph: StepGraph, path: str | os.PathLike[str]) -> Path:
    w = StepWriter(path)
    try:
        w.add_nodes(graph.nodes)
        w.add_edges(graph.edges)
        w.set_modules(graph.modules.values())
        for name, value in graph.analyses.items():
            w.set_analysis(name, value)
        w.set_aggregates(graph.aggregates)
        graph.meta.node_count = len(graph.nodes)
        return w.commit(graph.meta, graph.memory)
    except BaseException:
        w.abort()
        raise


# ---------------------------------------------------------------- reading

class StepReader:
    """Random access into one step file. Cheap to open; queries read only what they return."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such step file")
        try:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.DatabaseError, ValueError) as e:  # ValueError: a meta row that is not a pair
            raise CorruptStepError(
                self.path, f"not a readable torch-gprof step file ({e}); it may be truncated or corrupt") from None
        missing = [k for k in ("format", "schema_version", "meta", "memory") if k not in rows]
        if missing:
            raise CorruptStepError(
                self.path, f"not a torch-gprof step file (no {', '.join(missing)} in its meta table)")
        fmt, version = (load_json(self.path, k, rows[k]) for k in ("format", "schema_version"))
        if fmt != FORMAT_NAME:
            raise StoreError(f"{self.path}: format {fmt!r} is not {FORMAT_NAME!r}")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written with step schema v{version}, but this torch-gprof reads v{SCHEMA_VERSION}. "
                + ("Upgrade torch-gprof to read it." if isinstance(version, int) and version > SCHEMA_VERSION
                   else "Re-record it with this version.")
            )
        self.meta = decode_record(StepMeta, load_json(self.path, "meta", rows["meta"]), V1_META_FIELDS,
                                  self.path, "meta")
        self.memory = decode_record(MemorySummary, load_json(self.path, "memory", rows["memory"]),
                                    V1_MEMORY_FIELDS, self.path, "memory")
        tables = {n for (n,) in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "agg_module_edges" not in tables:  # written when agg_op_edges still counted a tensor per reading op
            tables.discard("agg_op_edges")
        for name, query in AGGREGATE_QUERIES.items():
            if name not in tables:  # an older file: the same rows, computed when read (a temp view shadows
                self._query(f"CREATE TEMP VIEW {name} AS {query}")  # a stored table of the same name)

    # Access --------------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as e:
            raise CorruptStepError(self.path, f"corrupt step file ({e})") from None

    def decode_nodes(self, rows: Iterable[Sequence[Any]]) -> list[Node]:
        """Nodes from rows of ``NODE_COLUMNS``; a row that does not decode is a CorruptStepError."""
        out = []
        for row in rows:
            with decoding(self.path, f"node {row[0]}"):
                out.append(row_to_node(row, self.meta.rank))
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StepReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self) -> int:
        return self._query("SELECT COUNT(*) FROM nodes")[0][0]

    def node(self, idx: int) -> Node | None:
        nodes = self.decode_nodes(self._query(_NODE_SELECT + " WHERE idx = ?", (idx,)))
        return nodes[0] if nodes else None

    def node_by_key(self, key: str) -> Node | None:
        nodes = self.decode_nodes(self._query(_NODE_SELECT + " WHERE key = ?", (key,)))
        return nodes[0] if nodes else None

    def nodes(self, start: int = 0, stop: int | None = None) -> list[Node]:
        if stop is None:
            rows = self._query(_NODE_SELECT + " WHERE idx >= ? ORDER BY idx", (start,))
        else:
            rows = self._query(_NODE_SELECT + " WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop))
        return self.decode_nodes(rows)

    def iter_nodes(self, chunk: int = 50_000) -> Iterator[Node]:
        start = 0
        while True:
            batch = self.nodes(start, start + chunk)
            if not batch:
                return
            yield from batch
            start = batch[-1].idx + 1

    def module_nodes(self, module: str | None, recursive: bool = True) -> list[Node]:
        """Nodes of one module (and, by default, its submodules), using the module index."""
        if module is None:
            rows = self._query(_NODE_SELECT + " WHERE module IS NULL ORDER BY idx")
        elif module == "":
            rows = self._query(_NODE_SELECT + (" WHERE module IS NOT NULL" if recursive else " WHERE module = ''")
                               + " ORDER BY idx")
        elif recursive:
            # '.' + 1 == '/': a range scan on the index instead of LIKE
            rows = self._query(
                _NODE_SELECT + " WHERE module = ? OR (module >= ? AND module < ?) ORDER BY idx",
                (module, module + ".", module + "/"),
            )
        else:
            rows = self._query(_NODE_SELECT + " WHERE module = ? ORDER BY idx", (module,))
        return self.decode_nodes(rows)

    def edges(self, node: int | None = None) -> list[Edge]:
        if node is None:
            rows = self._query("SELECT src, dst, storage, nbytes FROM edges")
        else:
            rows = self._query("SELECT src, dst, storage, nbytes FROM edges WHERE src = ? OR dst = ?", (node, node))
        return [Edge(*r) for r in rows]

    def modules(self) -> dict[str, ModuleInfo]:
        return {fqn: ModuleInfo(fqn, t, bool(b)) for fqn, t, b in self._query("SELECT fqn, type, builtin FROM modules")}

    def analyses(self) -> dict[str, Any]:
        """Stored analysis results by name. One that does not decode reads as a failed analysis
        (``{"error": ...}``, as capture stores one that raised), so the step's other results show."""
        return {str(k): self._analysis(k, v) for k, v in self._query("SELECT name, value FROM analyses")}

    def analysis(self, name: str) -> Any | None:
        rows = self._query("SELECT value FROM analyses WHERE name = ?", (name,))
        return self._analysis(name, rows[0][0]) if rows else None

    def _analysis(self, name: str, text: Any) -> Any:
        try:
            return load_json(self.path, f"analysis {name!r}", text)
        except CorruptStepError as e:
            return {"error": str(e)}

    def aggregates(self) -> dict[str, list[int]]:
        return {op: [c, t] for op, c, t in self._query("SELECT op, count, total_ns FROM aggregates")}

    def op_facts(self) -> dict[str, OpFacts] | None:
        """Torch's facts about the step's ops as the writer stored them; None for a file written
        before they were stored (or without torch), whose ops only torch can classify."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'op_facts'"):
            return None
        out = {}
        for op, text in self._query("SELECT op, facts FROM op_facts"):
            with decoding(self.path, f"op facts of {op!r}"):
                out[str(op)] = facts_from_json(load_json(self.path, f"op facts of {op!r}", text))
        return out

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Read-only SQL for views that aggregate (op tables, module tables) inside SQLite."""
        return self._query(query, params)

    def load(self) -> StepGraph:
        return StepGraph(
            meta=self.meta,
            nodes=list(self.iter_nodes()),
            edges=self.edges(),
            modules=self.modules(),
            memory=self.memory,
            analyses=self.analyses(),
            aggregates=self.aggregates(),
        )
