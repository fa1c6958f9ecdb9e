"""A recorded step as plain data, spooled to a file for the step worker (gprof/capture/worker.py).

The raw records (gprof/capture/records.py) hold live objects: ``torch.Size``, ``torch.dtype`` and
``torch.device`` per tensor, code objects in frames, a flop formula in a deferred flop count. Pickling
them as they are costs ~5.6 us per record (each ``torch.Size`` and ``torch.device`` is reduced by
Python code); interning each (shape, dtype, device) into a per-chunk table and evaluating deferred flop
counts here (memoised, gprof/capture/records.py) costs ~1.7 us per record, encoding and pickling
together (606-op GPT-2-like step: ~1 ms; docs/recording-facts.md). Code objects become
:class:`CodeRef` (file and function name: all the builder reads) through the pickler's dispatch table,
once per code object per chunk.

A spool file is a sequence of pickled frames: a :class:`StepHeader`, one frame per chunk of records
(the recorder's full chunks are spooled as they come, so a huge step never sits in memory) with what
this process knows of the chunk's new op names (torch's op facts, a view or not among them: ops the user's
code registered, and Inductor's verdicts where Inductor is imported, exist only here), and an end frame
with the :class:`StepEnd`. It is written on the training thread and only then handed to
the worker, so a worker that dies leaves every handed-off step on disk, to be built in-process.
"""
from __future__ import annotations

import copyreg
import os
import pickle
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import torch

from gprof.analyses.opclass import prefer_op_facts
from gprof.analyses.torch_ops import op_facts
from gprof.capture import records as R
from gprof.capture.builder import StepBuilder, learn_view_ops
from gprof.capture.storage import GuardedSink, open_step_sink
from gprof.graph.model import StepGraph, StepMeta
from gprof.store.sink import StepSink

assert R.RAW_OUTPUTS == R.RAW_INPUTS + 1, "the encoding replaces the two tensor lists together"


class CodeRef(NamedTuple):
    """What the builder reads of a frame's code object (gprof/capture/builder.py ``_source``)."""

    co_filename: str
    co_name: str


def _reduce_code(code: types.CodeType) -> tuple:
    return CodeRef, (code.co_filename, code.co_name)


_DISPATCH = {**copyreg.dispatch_table, types.CodeType: _reduce_code}


@dataclass
class StepHeader:
    """What the step's start knew (``StepPipeline.begin_step``), as plain data."""

    meta: StepMeta
    path: str  # the step file to write
    start_peek: int
    baseline: dict[int, int]
    state_params: dict[int, tuple[str, str | None]]
    keep_limit: int
    analyze: bool | list[str]
    cwd: str
    #: where the step goes if ``path`` was taken meanwhile (gprof/capture/storage.py)
    fallback: str | None = None


@dataclass
class StepEnd:
    """What the step's end knows (memory events, state categories, timing, the user's error), as
    plain data: the in-process path and the worker finish a step from the same object."""

    free_events: list[tuple[int, int, int]]
    live_sizes: dict[int, int]
    categories: dict[int, str]
    baseline_bytes: int
    aggregates: dict[str, list[int]]
    late_seen: list[tuple[int, int, int]]
    wall_ns: int
    start_ns: int
    error: str | None = None
    kineto_file: str | None = None
    partial: bool = False
    #: the module scope's names (gprof/capture/modules.py), read at the step's end
    types: dict[str, str] = field(default_factory=dict)
    builtin: dict[str, bool] = field(default_factory=dict)


class ScopeSnapshot:
    """The parts of a ``ModuleScope`` the builder reads, without the modules: parameter names by
    ``id()`` (values shaped like ``ModuleScope.params``, the weakref left out) and module types."""

    def __init__(self) -> None:
        self.params: dict[int, tuple[None, str]] = {}
        self.types: dict[str, str] = {}
        self.builtin: dict[str, bool] = {}


def encode_records(records: Sequence[tuple]) -> tuple[list[tuple], list[tuple], set[str]]:
    """(tensor table, records with each tensor list flattened to [sid, table index, ...] and
    deferred flop counts evaluated, op names): plain data that pickles at C speed."""
    metas: dict[tuple, int] = {}
    get = metas.get
    ops: set[str] = set()
    out = []
    for r in records:
        ops.add(r[R.RAW_OP])
        pair = []
        for ts in (r[R.RAW_INPUTS], r[R.RAW_OUTPUTS]):
            enc: list[int] = []
            for t in ts:
                k = (t[1], t[2], t[3])
                i = get(k)
                if i is None:
                    i = metas[k] = len(metas)
                enc.append(t[0])
                enc.append(i)
            pair.append(enc)
        rec = (*r[:R.RAW_INPUTS], pair[0], pair[1], *r[R.RAW_OUTPUTS + 1:])
        flops = r[R.RAW_FLOPS]
        if type(flops) is tuple:  # deferred shape formula: the formula is a function, count it here
            n = R.count_flops_of_shapes(flops[0], flops[1], flops[2], flops[3])
            rec = (*rec[:R.RAW_FLOPS], n, *rec[R.RAW_FLOPS + 1:])
        out.append(rec)
    table = [(tuple(shape), str(dtype), str(device)) for shape, dtype, device in metas]
    return table, out, ops


def decode_records(table: list[tuple], records: list[tuple]) -> list[tuple]:
    """The records back in the layout the builder reads (shapes as tuples)."""
    metas = [(shape, getattr(torch, dtype.removeprefix("torch.")), torch.device(device))
             for shape, dtype, device in table]
    out = []
    for r in records:
        ins, outs = r[R.RAW_INPUTS], r[R.RAW_OUTPUTS]
        out.append((*r[:R.RAW_INPUTS],
                    [(ins[j], *metas[ins[j + 1]]) for j in range(0, len(ins), 2)],
                    [(outs[j], *metas[outs[j + 1]]) for j in range(0, len(outs), 2)],
                    *r[R.RAW_OUTPUTS + 1:]))
    return out


class SpooledStep:
    """One step's spool file, written on the training thread: header, chunks, end."""

    def __init__(self, path: Path, header: StepHeader) -> None:
        self.path = path
        self.step = header.meta.step
        #: records spooled so far (the storage tracker's op counter adds the recorder's buffer)
        self.n = 0
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - closed by finish()/discard()
        self._params_sent = -1
        self._ops_sent: set[str] = set()
        self._dump(("head", header))

    def _dump(self, frame: tuple) -> None:
        assert self._file is not None
        p = pickle.Pickler(self._file, pickle.HIGHEST_PROTOCOL)
        p.dispatch_table = _DISPATCH
        p.dump(frame)

    def add(self, records: Sequence[tuple], device_times: dict[int, int], params: dict[int, Any]) -> None:
        """Spool a chunk; ``params`` is the scope's live map (its names go along when it grew)."""
        table, recs, ops = encode_records(records)
        new_ops = ops - self._ops_sent
        self._ops_sent |= new_ops
        names = None
        if len(params) != self._params_sent:
            self._params_sent = len(params)
            names = {pid: entry[1] for pid, entry in list(params.items())}
        self._dump(("chunk", table, recs, device_times, names, {op: op_facts(op) for op in new_ops}))
        self.n += len(records)

    def finish(self, end: StepEnd) -> None:
        self._dump(("end", end))
        self._close()

    def discard(self) -> None:
        self._close()
        self.path.unlink(missing_ok=True)

    def take_back(self, scope: Any) -> tuple[StepBuilder, GuardedSink]:
        """Build what was spooled here, in-process, and drop the file: an observer that arrives
        mid-step needs each op's node from now on (see ``StepPipeline._build``)."""
        self._close()
        try:
            builder, _, writer, _ = replay_spool(self.path, scope)
        finally:
            self.path.unlink(missing_ok=True)
        return builder, writer

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _frames(path: str | os.PathLike[str], names: ScopeSnapshot) -> Iterator[Any]:
    """Yield the header, then each chunk's decoded records with its device times, then the
    :class:`StepEnd` if the step was finished; ``names`` learns the names each chunk carries."""
    with open(path, "rb") as f:
        while True:
            try:
                frame = pickle.load(f)
            except EOFError:  # taken back before its end (see replay_spool)
                return
            kind = frame[0]
            if kind == "head":
                yield frame[1]
            elif kind == "chunk":
                _, table, recs, device_times, params, facts = frame
                if params is not None:
                    names.params = {pid: (None, name) for pid, name in params.items()}
                learn_view_ops({op: f.alias_only for op, f in facts.items()})
                prefer_op_facts(facts)
                yield decode_records(table, recs), device_times
            else:
                end: StepEnd = frame[1]
                names.types, names.builtin = end.types, end.builtin
                yield end
                return


def replay_spool(path: str | os.PathLike[str], scope: Any = None) -> tuple[StepBuilder, StepHeader, GuardedSink,
                                                                         StepEnd | None]:
    """Build the records a spool file holds into a builder writing the step's file, as the
    in-process path would have: in the worker (``scope`` None: the names the file carries), or in
    the training process when an observer arrives mid-step (``scope``: the live module scope).
    Returns the builder, the header, its writer and the step's end (None: not finished yet)."""
    names = ScopeSnapshot()
    frames = _frames(path, names)
    head: StepHeader = next(frames)
    writer = open_step_sink(head.path, head.fallback)
    try:
        builder = StepBuilder(writer, head.meta, names if scope is None else scope, head.baseline, head.start_peek,
                              keep_limit=head.keep_limit, state_params=head.state_params, cwd=head.cwd)
        for item in frames:
            if isinstance(item, StepEnd):
                return builder, head, writer, item
            records, device_times = item
            builder.device_times.update(device_times)
            builder.consume(records)
    except BaseException:
        writer.abort()
        raise
    return builder, head, writer, None


def complete_step(builder: StepBuilder, end: StepEnd, analyze: bool | list[str],
                  writer: StepSink) -> tuple[StepGraph, Path | None]:
    """Finish, analyse and write a built step: the in-process path (gprof/capture/pipeline.py) and
    the step worker (gprof/capture/worker.py) run this same code, so a handed-off step's file is the
    same file. Here rather than in the pipeline, so the worker imports neither the recorder nor the
    module hooks (and through them ``torch._dynamo``: seconds of the worker's start)."""
    graph = builder.finish(end.free_events, end.live_sizes, end.categories, end.baseline_bytes, end.aggregates,
                           late_seen=end.late_seen)
    meta = graph.meta
    meta.wall_ns = end.wall_ns
    meta.extra["start_ns"] = end.start_ns
    if end.error is not None:
        meta.complete = False
        meta.error = end.error
    if end.kineto_file is not None:
        meta.extra["kineto_trace"] = end.kineto_file
    meta.partial = end.partial
    if analyze and builder.keep_nodes:  # a step past keep_in_memory has no node objects to analyse
        from gprof.analyses import run_all

        asked = meta.extra.get("fusion_target") or {}
        graph.analyses = run_all(graph, only=None if analyze is True else list(analyze), target=asked.get("target"),
                                 gpu=asked.get("gpu"))
    for name, value in graph.analyses.items():
        writer.set_analysis(name, value)
    writer.set_modules(graph.modules.values())
    writer.set_aggregates(graph.aggregates)
    return graph, writer.commit(graph.meta, graph.memory)
