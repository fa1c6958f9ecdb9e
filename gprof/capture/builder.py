"""Raw records -> graph nodes, edges and the step's memory summary.

Runs in chunks (so a million-node step streams to disk) and after the step. All naming,
linking and string building happens here, off the hot path.
"""
from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from gprof.capture import records as R
from gprof.graph.collectives import BucketTracker
from gprof.graph.keys import KeyCounter
from gprof.graph.model import (
    Edge,
    MemoryCategory,
    MemorySummary,
    ModuleInfo,
    Node,
    Phase,
    StepGraph,
    StepMeta,
    TensorMeta,
)
from gprof.store.sink import NodeSink

#: a forward op may create several autograd nodes (e.g. a custom Function); never map more than this
_MAX_SEQ_SPAN = 16
# per-node comparisons use identity: the builder only ever assigns these members
FORWARD, BACKWARD, OPTIMIZER, RECOMPUTE = Phase.FORWARD, Phase.BACKWARD, Phase.OPTIMIZER, Phase.RECOMPUTE
#: how far past the last replayed forward node a recomputed op is looked for (ops one pass runs and the
#: other does not: the detach of a tensor saved under grad, checkpoint's own bookkeeping)
_REPLAY_WINDOW = 8
#: categories of model and optimizer state: never counted as saved activations
_MODEL_STATE = (MemoryCategory.PARAMETER, MemoryCategory.BUFFER, MemoryCategory.GRADIENT, MemoryCategory.OPTIMIZER)


def _module_of_param(name: str) -> str:
    return name.rpartition(".")[0]


_view_ops: dict[str, bool] = {}


def _is_view(op: str) -> bool:
    """Does the op (by its recorded name) only alias its input? The recorder's FuncInfo says."""
    v = _view_ops.get(op)
    if v is None:
        try:
            ns, name, overload = op.split(".", 2)
            v = R.op_info(getattr(getattr(getattr(torch.ops, ns), name), overload)).is_view
        except (AttributeError, ValueError, RuntimeError):  # not an aten-style op (e.g. a compiled region)
            v = False
        _view_ops[op] = v
    return v


def learn_view_ops(table: dict[str, bool]) -> None:
    """Take another process's answers of :func:`_is_view` (the step worker, gprof/capture/worker.py,
    learns them from the op facts each spooled chunk carries: ops the user's code registered do not
    exist there)."""
    _view_ops.update(table)


class StepBuilder:
    def __init__(self, writer: NodeSink | None, meta: StepMeta, scope: Any, baseline: dict[int, int],
                 start_peek: int, keep_limit: int, state_params: dict[int, tuple[str, str | None]] | None = None,
                 cwd: str | None = None) -> None:
        self.writer = writer
        self.meta = meta
        self.scope = scope
        self.baseline = baseline
        self.keep_limit = keep_limit
        #: storage id -> (parameter, optimizer class) it belongs to (parameter, grad or optimizer
        #: state), so optimizer ops are attributed to the parameters they update
        self.state_params = state_params or {}
        #: storages that autograd accumulated into a .grad during this step
        self.grad_sids: set[int] = set()
        self._buckets = BucketTracker()
        self._saved_reads: set[tuple[str, int]] = set()
        #: node index -> CUDA-event device time (filled by the session from its DeviceTimer)
        self.device_times: dict[int, int] = {}
        self._written_in_backward: set[int] = set()
        self.keep_nodes = True
        self._new_sizes: dict[int, int] = {}
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.n = 0
        self._keys = KeyCounter()
        self._threads: dict[int, int] = {}
        self._last_peek: dict[int, int] = {}
        self._start_peek = start_peek
        self._seq_to_node: dict[int, int] = {}
        self._node_module: list[str | None] = []
        self._node_source: list[str | None] = []
        #: op of each forward (or other) node, "" for the rest: what a recomputation replays
        self._replayable: list[str] = []
        #: checkpointed region (the record's ``recompute``) -> next forward node to replay
        self._replay: dict[tuple, int] = {}
        self._recomputed_reads: set[tuple[str, int]] = set()
        self._writer_of: dict[int, int] = {}
        self._alloc_at: dict[int, int] = {}  # sid -> index of the node that allocated it
        self._alloc_phase: dict[int, Phase] = {}
        self._tensor_cache: dict[tuple, tuple[str, str, int, tuple[int, ...]]] = {}
        self._source_cache: dict[tuple[Any, int], str] = {}
        self._cwd = cwd or os.getcwd()
        self._live = array("q")
        self.peak_bytes = -1
        self.peak_node: int | None = None
        self.devices: set[str] = set()
        self.flops = 0

    # ------------------------------------------------------------------------------ helpers
    def _tensor(self, raw: tuple) -> TensorMeta:
        sid, shape, dtype, device = raw
        key = (shape, dtype, device)
        c = self._tensor_cache.get(key)
        if c is None:
            dims = tuple(shape)
            dstr = str(dtype).removeprefix("torch.")
            devstr = str(device)
            nbytes = math.prod(dims) * dtype.itemsize
            c = self._tensor_cache[key] = (dstr, devstr, nbytes, dims)
            self.devices.add(devstr)
        return TensorMeta(c[3], c[0], c[1], c[2], abs(sid))

    def _source(self, frame: tuple[Any, int] | None) -> str | None:
        if frame is None:
            return None
        s = self._source_cache.get(frame)
        if s is None:
            fn = frame[0].co_filename
            try:
                rel = os.path.relpath(fn, self._cwd)
                if not rel.startswith(".."):
                    fn = rel
            except ValueError:
                pass
            s = self._source_cache[frame] = f"{fn}:{frame[1]} in {frame[0].co_name}"
        return s

    # ------------------------------------------------------------------------------ records
    def consume(self, records: Iterable[tuple]) -> Node | None:
        """Build a chunk of records; rows and edges go to the file at once, objects are kept only
        while the step stays under ``keep_limit`` nodes (analyses and ``prof.graphs`` use them).
        Returns the last node built (the debugger builds one record at a time and needs its key)."""
        built = []
        first_edge = len(self.edges)
        node = None
        for rec in records:
            node = self._build(rec)
            built.append(node)
        if self.keep_nodes:
            self.nodes.extend(built)
        if self.writer is not None:
            self.writer.add_nodes(built)
            self.writer.add_edges(self.edges[first_edge:])
        if self.keep_nodes and self.n > self.keep_limit:
            self.keep_nodes = False
            self.nodes = []
        if not self.keep_nodes:
            self.edges = []
        return node

    def _optimizer_owners(self, inputs: tuple[TensorMeta, ...]) -> tuple[list[str], dict[str, Any]]:
        """The parameters an optimizer op updates, in input order, and the attrs of one that
        updates several (a fused or foreach op): ``param_shares`` ([module, param, fraction] by the
        bytes of each parameter's tensors it reads, which follow parameter size) and ``optimizer``."""
        weights: dict[str, int] = {}
        opt = None
        for t in inputs:
            owner = self.state_params.get(t.storage)
            if owner is not None:
                weights[owner[0]] = weights.get(owner[0], 0) + t.nbytes
                opt = opt or owner[1]
        if len(weights) < 2:
            return list(weights), {}
        total = sum(weights.values())
        shares = [[_module_of_param(p), p, round(w / total if total else 1 / len(weights), 6)]
                  for p, w in weights.items()]
        return list(weights), {"param_shares": shares, "optimizer": opt}

    def _device_ns(self, idx: int, inputs: tuple[TensorMeta, ...], outputs: tuple[TensorMeta, ...]) -> int | None:
        """The op's CUDA-event time when it touched a CUDA tensor (host-only ops have none)."""
        ns = self.device_times.pop(idx, None)
        if ns is None:
            return None
        return ns if any(t.device.startswith("cuda") for t in (*inputs, *outputs)) else None

    def _build(self, rec: tuple) -> Node:
        idx = self.n
        self.n += 1
        ident = rec[R.RAW_THREAD]
        thread = self._threads.setdefault(ident, len(self._threads))
        peek = rec[R.RAW_PEEK]
        prev_peek = self._last_peek.get(ident, self._start_peek)
        self._last_peek[ident] = peek
        created_node = peek > prev_peek
        if created_node:
            for s in range(max(prev_peek, peek - _MAX_SEQ_SPAN), peek):
                self._seq_to_node[s] = idx

        module = rec[R.RAW_MODULE]
        fwd = None
        param = None
        grad_fn = None
        source = None
        region = rec[R.RAW_RECOMPUTE]
        if region is not None:  # activation checkpointing re-runs forward code during backward
            phase = RECOMPUTE
            grad_fn = rec[R.RAW_AUTOGRAD][1]
            fwd = self._replayed(region, rec[R.RAW_OP])
            if fwd is not None:
                module = self._node_module[fwd]
                source = self._source(rec[R.RAW_FRAME]) or self._node_source[fwd]
                if created_node:  # a reentrant checkpoint's backward of the recomputed graph: link it
                    for s in range(max(prev_peek, peek - _MAX_SEQ_SPAN), peek):  # to the original forward
                        self._seq_to_node[s] = fwd
        elif rec[R.RAW_BACKWARD]:
            phase = BACKWARD
            seq, grad_fn, param_id, leaf_sid = rec[R.RAW_AUTOGRAD]
            if seq is not None:
                fwd = self._seq_to_node.get(seq)
                if fwd is not None:  # the module and line of the forward op that made its autograd node
                    module = self._node_module[fwd]
                    source = self._node_source[fwd]
            elif param_id is not None:
                entry = self.scope.params.get(param_id)
                if entry is not None:
                    param = entry[1]
                    module = _module_of_param(param)
                elif leaf_sid is not None:
                    fwd = self._writer_of.get(leaf_sid)
                    if fwd is not None and module is None:
                        module = self._node_module[fwd]
        elif module is not None or (created_node and not rec[R.RAW_OPTIMIZER]):
            phase = FORWARD  # also a closure's forward inside optimizer.step (LBFGS)
        elif rec[R.RAW_OPTIMIZER]:
            phase = OPTIMIZER
        else:
            phase = Phase.OTHER
        if source is None:
            source = self._source(rec[R.RAW_FRAME])

        op = rec[R.RAW_OP]
        inputs = tuple(self._tensor(t) for t in rec[R.RAW_INPUTS])
        outputs = tuple(self._tensor(t) for t in rec[R.RAW_OUTPUTS])
        owners: list[str] = []
        shared: dict[str, Any] = {}
        if phase is OPTIMIZER:
            owners, shared = self._optimizer_owners(inputs)
            if len(owners) == 1:
                module = _module_of_param(owners[0])
        if phase is BACKWARD and module is None and fwd is None and param is None:
            # run by no autograd node (DDP's gradient copies out of its buckets): the parameter
            # whose gradient storage it touches
            param = self._buckets.sync_param(inputs, outputs)
            if param is not None:
                module = _module_of_param(param)

        # dataflow: each input storage links to the last node that wrote it
        writer_of = self._writer_of
        seen_src = set()
        for t in inputs:
            src = writer_of.get(t.storage)
            if src is not None and src not in seen_src:
                seen_src.add(src)
                self.edges.append(Edge(src, idx, t.storage, t.nbytes))
        # a view writes nothing: consumers of the view link to the storage's real producer
        is_view = _is_view(op)
        for raw, t in zip(rec[R.RAW_OUTPUTS], outputs):
            if raw[0] < 0:
                self._alloc_at[t.storage] = idx
                self._alloc_phase[t.storage] = phase
                writer_of[t.storage] = idx
            elif not is_view:
                writer_of[t.storage] = idx

        if phase is BACKWARD and module is not None and fwd is not None:
            # what backward reads that forward made (or that predates the step, like the batch)
            # is what autograd saved; it belongs to the module whose op saved it
            # (what recomputation made instead is what checkpointing saved keeping)
            for t in inputs:
                made = self._alloc_phase.get(t.storage, FORWARD)
                if made is FORWARD and t.storage not in self._written_in_backward:
                    self._saved_reads.add((module, t.storage))
                elif made is RECOMPUTE:
                    self._recomputed_reads.add((module, t.storage))
        if phase is BACKWARD:
            for raw, t in zip(rec[R.RAW_OUTPUTS], outputs):
                if raw[0] < 0 or not is_view:
                    self._written_in_backward.add(t.storage)
        if param is not None:
            self.grad_sids.update(t.storage for t in inputs)
            self.grad_sids.update(t.storage for t in outputs)
            for t in outputs:
                self.state_params.setdefault(t.storage, (param, None))
        elif owners:
            # optimizer state created this step belongs to the same parameter; a foreach op's
            # outputs line up with its first tensor list
            sp = self.state_params
            single = next(sp[t.storage] for t in inputs if t.storage in sp)
            for i, t in enumerate(outputs):
                owner = sp.get(inputs[i].storage) if shared and i < len(inputs) else single
                if owner is not None:
                    sp.setdefault(t.storage, owner)

        live = rec[R.RAW_LIVE]
        self._live.append(live)
        if live > self.peak_bytes:
            self.peak_bytes = live
            self.peak_node = idx
        flops = rec[R.RAW_FLOPS]
        if type(flops) is tuple:  # deferred shape formula: (formula, args, kwargs, out) as shapes
            flops = R.count_flops_of_shapes(flops[0], flops[1], flops[2], flops[3])
        self.flops += flops
        self._node_module.append(module)
        self._node_source.append(source)
        self._replayable.append(op if phase is FORWARD or phase is Phase.OTHER else "")
        extra = rec[R.RAW_EXTRA]
        node = Node(  # positional: keyword construction of a slots dataclass is 3x slower
            idx, self._keys.next(module, phase, op), op, phase, module, inputs, outputs,
            rec[R.RAW_START], rec[R.RAW_DUR], self._device_ns(idx, inputs, outputs),
            rec[R.RAW_ALLOC], rec[R.RAW_FREED], live, flops, source, thread, self.meta.rank, fwd, param, grad_fn,
            {**(extra or {}), **shared} if extra or shared else {},
        )
        self._buckets.observe(node)
        return node

    def _replayed(self, region: tuple[int | None, int | None], op: str) -> int | None:
        """The forward node a recomputed op repeats. A checkpointed region re-runs the forward ops
        that followed the node that opened it, in order (up to where checkpoint stops early), so
        each region keeps a cursor; an op one run has and the other lacks is skipped over."""
        cursor = self._replay.get(region)
        if cursor is None:
            cursor = self._seq_to_node.get(region[0]) if region[0] is not None else region[1]
            if cursor is None:
                return None
        ops = self._replayable
        for j in range(cursor, min(cursor + _REPLAY_WINDOW, len(ops))):
            if ops[j] == op:
                self._replay[region] = j + 1
                return j
        self._replay[region] = cursor
        return None

    # ------------------------------------------------------------------------------ finish
    def memory_summary(self, free_events: list[tuple[int, int, int]], categories: dict[int, str],
                       baseline_bytes: int, curve_points: int = 1000) -> MemorySummary:
        """Live bytes by category (MemTracker's split) at the peak and along the step.

        Each storage is an interval of nodes [allocated, freed); one sweep over those intervals gives
        the categories at every sampled node. Samples take each bucket's highest node, so the curve
        keeps its peaks, and the peak node is always one of them."""
        summary = MemorySummary(baseline_bytes=baseline_bytes,
                                saved_activations=self._bytes_by_module(self._saved_reads, categories),
                                recomputed_activations=self._bytes_by_module(self._recomputed_reads, categories))
        if self.peak_node is None:
            return summary
        freed_at = {sid: at for sid, _, at in free_events}
        sizes: dict[int, int] = {**self.baseline, **self._new_sizes}
        start: dict[str, int] = {}
        events: list[tuple[int, str, int]] = []
        for sid, nb in sizes.items():
            at = self._alloc_at.get(sid)
            cat = self._category(sid, at is not None, categories)
            if at is None:
                start[cat] = start.get(cat, 0) + nb
            else:
                events.append((at, cat, nb))
            f = freed_at.get(sid)
            if f is not None:
                events.append((f, cat, -nb))
        events.sort(key=lambda e: e[0])
        samples = self._curve_samples(curve_points)
        live = dict(start)
        curve: dict[str, list[int]] = {c: [] for c in {*start, *(e[1] for e in events)}}
        j = 0
        for i in samples:
            while j < len(events) and events[j][0] <= i:
                _, cat, nb = events[j]
                live[cat] = live.get(cat, 0) + nb
                j += 1
            for cat, values in curve.items():
                values.append(live.get(cat, 0))
            if i == self.peak_node:
                summary.by_category = {c: v for c, v in live.items() if v}
        summary.peak_bytes = self.peak_bytes
        summary.peak_node = self.peak_node
        summary.curve = {"nodes": samples, "categories": {c: v for c, v in curve.items() if any(v)}}
        return summary

    def _category(self, sid: int, allocated_in_step: bool, categories: dict[int, str]) -> str:
        cat = categories.get(sid)
        if sid in self.grad_sids and cat in (None, MemoryCategory.TEMPORARY, MemoryCategory.ACTIVATION):
            return MemoryCategory.GRADIENT
        if cat is not None:
            return cat
        if not allocated_in_step:
            return MemoryCategory.OTHER
        return MemoryCategory.ACTIVATION if self._alloc_phase.get(sid) == FORWARD else MemoryCategory.TEMPORARY

    def _curve_samples(self, points: int) -> list[int]:
        """At most ``points`` node indices: each bucket's highest-live node, plus the peak."""
        n = len(self._live)
        width = max(1, -(-n // points))
        live = self._live
        samples = []
        for lo in range(0, n, width):
            hi = min(n, lo + width)
            samples.append(max(range(lo, hi), key=live.__getitem__))
        if self.peak_node is not None and self.peak_node not in samples:
            samples.append(self.peak_node)
            samples.sort()
        return samples

    def _bytes_by_module(self, reads: set[tuple[str, int]], categories: dict[int, str]) -> dict[str, int]:
        """Bytes of the (module, storage) reads of backward that are activations, per module: what
        forward saved (storages forward made, or that predate the step and are not model state), or
        what recomputation made in its place. Derived from the graph instead of a saved-tensor hook,
        which torch.func and torch.compile refuse or recompile on."""
        sizes = {**self.baseline, **self._new_sizes}
        saved: dict[str, int] = {}
        for module, sid in reads:
            if categories.get(sid) in _MODEL_STATE:
                continue
            saved[module] = saved.get(module, 0) + sizes.get(sid, 0)
        return dict(sorted(saved.items()))

    def _add_late_storages(self, late_seen: list[tuple[int, int, int]]) -> int:
        """Storages first seen as inputs mid-step existed since the step began: count them as live
        from the first node (MemTracker counts them the same way). Returns their total bytes."""
        late = [(at, nb, sid) for sid, nb, at in late_seen
                if sid not in self._alloc_at and sid not in self.baseline and nb]
        if not late:
            return 0
        for _, nb, sid in late:
            self.baseline[sid] = nb
        late.sort()
        total = sum(nb for _, nb, _ in late)
        # nodes before the first sighting of each late storage get its bytes: a piecewise-constant bonus
        bonus = total
        start = 0
        for at, nb, _ in [*late, (self.n, 0, 0)]:
            if at > start and bonus:
                for i in range(start, min(at, self.n)):
                    self._live[i] += bonus
                if self.keep_nodes:
                    for node in self.nodes[start:at]:
                        node.live_bytes += bonus
                if self.writer is not None:
                    self.writer.bump_live_bytes(start, at, bonus)
            start = max(start, at)
            bonus -= nb
        self.peak_bytes, self.peak_node = -1, None
        for i, v in enumerate(self._live):
            if v > self.peak_bytes:
                self.peak_bytes, self.peak_node = v, i
        return total

    def finish(self, free_events: list[tuple[int, int, int]], live_sizes: dict[int, int],
               categories: dict[int, str], baseline_bytes: int,
               aggregates: dict[str, list[int]], late_seen: Sequence[tuple[int, int, int]] = ()) -> StepGraph:
        baseline_bytes += self._add_late_storages(list(late_seen))
        self._new_sizes = {sid: nb for sid, nb, _ in free_events if sid in self._alloc_at}
        self._new_sizes.update({sid: nb for sid, nb in live_sizes.items() if sid in self._alloc_at})
        memory = self.memory_summary(free_events, categories, baseline_bytes)
        builtin = self.scope.builtin
        modules = {fqn: ModuleInfo(fqn, t, builtin.get(fqn, False)) for fqn, t in self.scope.types.items()}
        self.meta.node_count = self.n
        self.meta.aggregate_only = bool(aggregates)
        self.meta.devices = tuple(sorted(self.devices))
        self.meta.extra["flops"] = self.flops
        self.meta.extra["optimizers"] = sorted({o for _, o in self.state_params.values() if o})
        graph = StepGraph(meta=self.meta, nodes=self.nodes, edges=self.edges, modules=modules, memory=memory,
                          aggregates=aggregates)
        return graph
