"""The hot path: a TorchDispatchMode that appends one plain tuple per aten op.

Everything that is not needed to *identify* an op later (names, keys, edges, strings) is left to
:mod:`gprof.capture.builder`, which runs after the step or in chunks. Measured in
docs/recording-facts.md: weak dictionaries and string building in the hot path cost 4x more than
the dispatch floor; tuple appends cost almost nothing. The tuple's layout is
:class:`gprof.capture.records.RawRecord`.

The recorder knows its collaborators, not the pipeline that drives it: the storage tracker, the
module scope, the device timer, the options, and ``build``, which turns records into graph nodes
(a full chunk, or the last record when an observer needs its node at once).
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from time import perf_counter_ns
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
import torch._dynamo.trace_rules
from torch.utils._python_dispatch import TorchDispatchMode

from gprof.capture.checkpoint import recomputed_region, top_saved_hooks
from gprof.capture.collectives import collective_attrs
from gprof.capture.op_args import arg_shapes, flat_tensors, input_metas, opaque_meta, previews, shape_of
from gprof.capture.records import (
    COMPILED_REGION_OP,
    RAW_ALLOC,
    RAW_AUTOGRAD,
    RAW_DUR,
    RAW_EXTRA,
    RAW_FREED,
    RAW_INPUTS,
    RAW_OP,
    RAW_OPTIMIZER,
    RAW_OUTPUTS,
    RAW_START,
    count_flops,
    op_info,
)

if TYPE_CHECKING:
    from gprof.capture.device_timing import DeviceTimer
    from gprof.capture.memory import StorageTracker
    from gprof.capture.modules import ModuleScope
    from gprof.capture.options import CaptureOptions

_Tensor = torch.Tensor
_graph_task_id = torch._C._current_graph_task_id
_current_node = torch._C._current_autograd_node
_peek_seq = torch._C._autograd._get_sequence_nr
_grad_enabled = torch.is_grad_enabled
_get_ident = threading.get_ident
_getframe = sys._getframe
_storage_key = torch._C._storage_address  # type: ignore[attr-defined]

# Dynamo must never trace gprof's own frames (the recorder, its hooks): skip the whole package.
torch._dynamo.trace_rules.add("gprof")


_ACCUMULATE_GRAD_SEQ = 2**64 - 1
_COMPILED_BACKWARD = "CompiledFunctionBackward"
#: the autograd node of torch.utils.checkpoint(use_reentrant=True): its backward re-runs the forward
_REENTRANT_CHECKPOINT = "CheckpointFunctionBackward"


def _internal_prefixes() -> tuple[str, ...]:
    """Files whose frames are not the user's line: torch, gprof itself, contextlib, threading."""
    import contextlib

    gprof_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = {os.path.dirname(torch.__file__), gprof_dir,
            os.path.dirname(contextlib.__file__) + os.sep + "contextlib.py", threading.__file__}
    return tuple(sorted(dirs))


def _is_internal_file(filename: str, prefixes: tuple[str, ...]) -> bool:
    return filename.startswith(prefixes) or filename.startswith("<")


class Recorder(TorchDispatchMode):
    """Records every op dispatched while active. One per profile session; entered per recorded step."""

    def __init__(self, tracker: StorageTracker, scope: ModuleScope, timer: DeviceTimer | None,
                 options: CaptureOptions, build: Callable[[Sequence[tuple]], Any]) -> None:
        super().__init__()
        #: storage ids, allocations and frees (gprof.capture.memory)
        self.tracker = tracker
        #: turns records into graph nodes and returns the last one: called with each full chunk
        #: (streamed to the step file) and, when observers are attached, with each new record
        self.build = build
        self.buffer: list[tuple] = []
        #: True between :meth:`start` and :meth:`stop`: a compiled region ending between steps is not recorded
        self.recording = False
        self._code_internal: dict[int, bool] = {}
        self._code_refs: list[Any] = []
        self._internal_prefixes = _internal_prefixes()
        self._last_node: Any = None
        self._last_autograd: tuple | None = None
        self.in_optimizer = False
        self._ranges: list[bool] = []
        #: the user line that called optimizer.step(), and whether the step's ops all have it as their
        #: line (torch's own optimizers; None until the first op tells): then it is not searched per op
        self._opt_frame: tuple[Any, int] | None = None
        self._opt_shared: bool | None = None
        #: id(frame) -> (frame, index of the first record after it opened) of each non-reentrant
        #: checkpoint region of this step; (pack hook, region) of the recomputation last seen
        self._checkpoint_starts: dict[int, tuple[Any, int]] = {}
        self._recompute_hook: tuple[Any, tuple | None] = (None, None)
        scope.on_checkpoint = self._checkpoint_opened
        #: called as ``obs(node, func, args, kwargs, out)`` after each op with the built graph
        #: Node (stable key included) and the live tensors, e.g. by the debugger. Runs inside
        #: ``__torch_dispatch__``, so torch ops an observer runs are not recorded.
        self.observers: list[Callable[..., None]] = []
        #: called as ``obs(func, args, kwargs, error, module)`` when an op raises, before the
        #: exception propagates (the op's frames and inputs still alive): a debugger's post-mortem
        self.failure_observers: list[Callable[..., None]] = []
        self.with_stack = options.with_stack
        self.node_cap = options.node_cap
        self.aggregate_only = False
        self.aggregates: dict[str, list[int]] = {}
        self.chunk_size = options.chunk_size
        #: records already handed to the builder this step, and how long the buffer may grow before
        #: the next chunk is built or the node cap is reached (one length check per op covers both)
        self._flushed = 0
        self._room = min(self.chunk_size, self.node_cap)
        #: CUDA event pairs per op (gprof.capture.device_timing); None on CPU, where it costs nothing
        self.device_timer = timer
        self.preview_elems = options.tensor_preview
        self._regions = scope.regions
        self._stacks = scope.stacks

    @property
    def total_recorded(self) -> int:
        """Nodes recorded in this step so far (built, or waiting in the buffer)."""
        return self._flushed + len(self.buffer)

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps every mode's __torch_dispatch__ in dynamo.disable, which costs half the Python
        # dispatch floor per op; gprof's files are on Dynamo's skip list instead (below), which keeps
        # Dynamo out of this code just the same.
        return False

    @classmethod
    def ignore_compile_internals(cls) -> bool:
        # Lets torch.compile'd code run compiled while we record (Dynamo otherwise falls back to
        # eager under a Python mode); compiled regions are recorded as opaque nodes.
        return True

    def _user_frame(self) -> tuple[Any, int] | None:
        f: FrameType | None = _getframe(2)
        cache = self._code_internal  # keyed by id(code): hashing a code object hashes its bytecode
        while f is not None:
            code = f.f_code
            internal = cache.get(id(code))
            if internal is None:
                internal = _is_internal_file(code.co_filename, self._internal_prefixes)
                cache[id(code)] = internal
                self._code_refs.append(code)  # keeps the id unique for the session
            if not internal:
                return (code, f.f_lineno)
            f = f.f_back
        return None

    def _autograd_info(self) -> tuple:
        node = _current_node()
        if node is self._last_node and self._last_autograd is not None:
            return self._last_autograd
        info: tuple
        if node is None:
            info = (None, None, None, None)
        else:
            seq: int | None = node._sequence_nr()
            name = node.name()
            param_id: int | None = None
            leaf_sid: int | None = None
            if seq == _ACCUMULATE_GRAD_SEQ:
                # a leaf's gradient: a parameter (named by the builder), or another leaf tensor
                # (a user input, checkpoint's detached input) linked to the op that made it
                var = getattr(node, "variable", None)
                if var is not None:
                    param_id = id(var)
                    try:
                        e = self.tracker.live.get(_storage_key(var))
                        leaf_sid = e[0] if e is not None else None
                    except (RuntimeError, NotImplementedError):
                        leaf_sid = None
                seq = None
            info = (seq, name, param_id, leaf_sid)
        self._last_node = node
        self._last_autograd = info
        return info

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if kwargs is None:
            kwargs = {}
        try:  # an attribute on the OpOverload: a dict lookup would run OpOverload's Python __hash__
            info = func._gprof_info
        except AttributeError:
            info = op_info(func)
        timer = self.device_timer
        try:  # free when nothing raises (zero-cost exception handling)
            if timer is None:
                t0 = perf_counter_ns()
                out = info.call(*args, **kwargs)
                dur = perf_counter_ns() - t0
            else:  # CUDA: an event pair around the op, read after the step
                slot = timer.start()
                t0 = perf_counter_ns()
                out = info.call(*args, **kwargs)
                dur = perf_counter_ns() - t0
                timer.stop(slot)
        except Exception as error:
            if self.failure_observers and not info.skip:
                self._op_failed(func, args, kwargs, error)
            raise
        if info.skip:
            if info.range_marker:
                self._track_range(info.range_marker, args)
            return out
        regions = self._regions
        if regions:
            region = regions.get(_get_ident())
            if region is not None:  # inside a torch.compile'd module: one opaque node at its end
                region[3] += 1
                return out
        if len(self.buffer) >= self._room and self._buffer_full(info.name, dur):
            return out

        tracker = self.tracker
        live = tracker.live
        alloc = 0

        # Storage identity is the StorageImpl address (what UntypedStorage._cdata is), read without
        # making a Python storage object; one is made only the first time a storage is seen.
        ins = []
        for a in (args if not kwargs else (*args, *kwargs.values())):
            if isinstance(a, _Tensor):
                try:
                    e = live.get(_storage_key(a))
                    sid = e[0] if e is not None else tracker.register_input(a.untyped_storage(), a.is_meta)
                    ins.append((sid, a.shape, a.dtype, a.device))
                except (RuntimeError, NotImplementedError):  # no storage or no sizes (sparse, nested)
                    ins.append(opaque_meta(a))
            elif type(a) is list or type(a) is tuple:
                ins.extend(input_metas(a, tracker))

        outs = []
        for t in (out if type(out) is tuple or type(out) is list else (out,)):
            if not isinstance(t, _Tensor):
                continue
            try:
                e = live.get(_storage_key(t))
                if e is not None:
                    sid = e[0]
                else:
                    sid, nb, _ = tracker.register(t.untyped_storage(), t.is_meta)
                    alloc += nb
                    sid = -sid
                outs.append((sid, t.shape, t.dtype, t.device))
            except (RuntimeError, NotImplementedError):
                outs.append(opaque_meta(t))

        ident = _get_ident()
        stack = self._stacks.get(ident)
        in_backward = _graph_task_id() != -1
        flop_fn = info.flop_fn
        flops: Any = 0
        if flop_fn is not None:
            if info.flop_deferred:
                flops = (flop_fn, arg_shapes(args), {k: shape_of(v) for k, v in kwargs.items()} if kwargs else kwargs,
                         out.shape if isinstance(out, _Tensor) else shape_of(out))
            else:
                flops = count_flops(flop_fn, args, kwargs, out)
        autograd = self._autograd_info() if in_backward else None
        recompute = None
        if autograd is not None and _grad_enabled():  # grad is off in backward unless forward re-runs
            recompute = self._recompute_region(autograd)
        if autograd is not None and autograd[1] == _COMPILED_BACKWARD:
            self._merge_compiled_backward(autograd, t0, dur, ins, outs, alloc)
            if timer is not None:  # the region's pairs add up on its one node
                timer.assign(slot, self.total_recorded - 1)
            return out
        freed = tracker.freed_since
        tracker.freed_since = 0
        # a closure run by optimizer.step(closure) is the user's forward and backward: the optimizer
        # runs its own update with grad off and the closure with grad on (torch.optim's contract)
        in_optimizer = self.in_optimizer and not in_backward and not _grad_enabled()
        if (in_backward and recompute is None) or not self.with_stack:
            frame = None
        elif in_optimizer and self._opt_shared:
            frame = self._opt_frame
        else:
            frame = self._user_frame()
            if in_optimizer and self._opt_shared is None:
                self._opt_shared = frame == self._opt_frame
        rec = (
            info.name, t0, dur, ident, stack[-1] if stack else None, in_backward, _peek_seq(),
            autograd, frame,
            ins, outs, alloc, freed, tracker.live_bytes, flops, in_optimizer,
            collective_attrs(func, args, kwargs, out) if info.is_collective
            else (previews(out, self.preview_elems) if self.preview_elems else None),
            recompute,
        )
        buffer = self.buffer  # after _buffer_full: a built chunk leaves a new list
        buffer.append(rec)
        if timer is not None:
            timer.assign(slot, self._flushed + len(buffer) - 1)
        if self.observers:
            self._flushed += 1
            node = self.build((buffer.pop(),))
            for obs in self.observers:
                obs(node, func, args, kwargs, out)
        return out

    def _op_failed(self, func: Any, args: tuple, kwargs: dict, error: Exception) -> None:
        """An op raised: tell the failure observers, with the module it ran in."""
        stack = self._stacks.get(_get_ident())
        for obs in list(self.failure_observers):
            obs(func, args, kwargs, error, stack[-1] if stack else None)

    def _buffer_full(self, name: str, dur: int) -> bool:
        """The buffer reached its room: build a chunk and go on (False), or, past the node cap,
        count this op in the aggregates instead of recording it (True)."""
        if self.aggregate_only or self._flushed + len(self.buffer) >= self.node_cap:
            self._aggregate(name, dur)
            return True
        chunk, self.buffer = self.buffer, []
        self._flushed += len(chunk)
        self.build(chunk)
        self._room = min(self.chunk_size, self.node_cap - self._flushed)
        return False

    def region_end(self, name: str, start: int, ops: int, args: Any, out: Any) -> None:
        """A torch.compile'd module returned: record it as one opaque node (its kernels are fused)."""
        if not self.recording:
            return
        dur = perf_counter_ns() - start
        tracker = self.tracker
        ins = input_metas(flat_tensors(args), tracker)
        outs, alloc = [], 0
        for t in flat_tensors(out):
            m, nb = self._output_meta(t, tracker)
            outs.append(m)
            alloc += nb
        ident = _get_ident()
        self.buffer.append((
            COMPILED_REGION_OP, start, dur, ident, name, False,
            _peek_seq(), None, self._user_frame() if self.with_stack else None, ins, outs, alloc,
            tracker.take_freed(), tracker.live_bytes, 0, self.in_optimizer,
            {"compiled_region": name, "ops_seen": ops}, None,
        ))

    def _merge_compiled_backward(self, autograd: tuple, t0: int, dur: int, ins: list, outs: list,
                                 alloc: int) -> None:
        """Fold the extern calls of one compiled backward into a single region node."""
        buf = self.buffer
        if buf and buf[-1][RAW_OP] == COMPILED_REGION_OP and buf[-1][RAW_AUTOGRAD] == autograd:
            last = buf[-1]
            extra = dict(last[RAW_EXTRA])
            extra["ops_seen"] += 1
            tracker = self.tracker
            buf[-1] = (*last[:RAW_DUR], t0 + dur - last[RAW_START], *last[RAW_DUR + 1:RAW_INPUTS],
                       last[RAW_INPUTS] + ins, last[RAW_OUTPUTS] + outs, last[RAW_ALLOC] + alloc,
                       last[RAW_FREED] + tracker.take_freed(), tracker.live_bytes, 0, last[RAW_OPTIMIZER], extra,
                       None)
            return
        ident = _get_ident()
        stack = self._stacks.get(ident)
        buf.append((COMPILED_REGION_OP, t0, dur, ident, stack[-1] if stack else None, True, _peek_seq(), autograd,
                    None, ins, outs, alloc, self.tracker.take_freed(), self.tracker.live_bytes, 0,
                    self.in_optimizer, {"compiled_region": "backward", "ops_seen": 1}, None))

    @staticmethod
    def _output_meta(t: torch.Tensor, tracker: Any) -> tuple[tuple, int]:
        """(meta, newly allocated bytes) of an output, the hot loop's rule for the rare paths."""
        try:
            sid, nb, new = tracker.register(t.untyped_storage(), t.is_meta)
            meta = (-sid if new else sid, t.shape, t.dtype, t.device)
        except (RuntimeError, NotImplementedError):  # no storage or no sizes (sparse, nested)
            return opaque_meta(t), 0
        return meta, nb if new else 0

    def _track_range(self, marker: str, args: tuple) -> None:
        """record_function ranges nest like the context managers they are, and close on exceptions,
        so the optimizer phase ends even when optimizer.step() raises and the user carries on."""
        ranges = self._ranges
        if marker == "enter":
            opt = bool(args) and isinstance(args[0], str) and args[0].startswith("Optimizer.step#")
            if opt:
                self._opt_frame = self._user_frame() if self.with_stack else None
                self._opt_shared = None
            ranges.append(opt)
        elif ranges:
            ranges.pop()
        self.in_optimizer = any(ranges)

    def _checkpoint_opened(self, frame: Any) -> None:
        if self.recording:
            self._checkpoint_starts.setdefault(id(frame), (frame, self.total_recorded))

    def _recompute_region(self, autograd: tuple) -> tuple | None:
        """Grad is on in backward: forward code re-run by torch.utils.checkpoint, or a backward with
        ``create_graph=True`` (None: an ordinary backward op). A region is (sequence number of its
        reentrant node, index of its first forward record), either None where not known."""
        if autograd[1] == _REENTRANT_CHECKPOINT:
            return (autograd[0], None)
        hooks = top_saved_hooks(False)
        if hooks is None:
            return None
        pack = hooks[0]
        if pack is self._recompute_hook[0]:
            return self._recompute_hook[1]
        frame = recomputed_region(pack)
        if frame is None:
            return None
        start = self._checkpoint_starts.get(id(frame)) if frame is not False else None
        region = (None, start[1] if start is not None and start[0] is frame else None)
        self._recompute_hook = (pack, region)
        return region

    def _aggregate(self, name: str, dur: int) -> None:
        if not self.aggregate_only:
            self.aggregate_only = True
            warnings.warn(
                f"torch-gprof: this step passed the node cap ({self.node_cap:,} nodes); recording the rest "
                "of the step as per-op aggregates only. Raise profile(node_cap=...) to keep every node.",
                RuntimeWarning, stacklevel=3,
            )
        agg = self.aggregates.get(name)
        if agg is None:
            self.aggregates[name] = [1, dur]
        else:
            agg[0] += 1
            agg[1] += dur

    def start(self) -> None:
        """Begin recording a step: a fresh buffer, and this mode pushed on the dispatch stack."""
        self._reset_step()
        self.recording = True
        self.__enter__()

    def stop(self) -> list[tuple]:
        """Stop recording; returns the records not yet handed to ``build`` (the pipeline builds them)."""
        self.__exit__(None, None, None)
        self.recording = False
        rest, self.buffer = self.buffer, []
        return rest

    def _reset_step(self) -> None:
        self.buffer = []
        self.aggregate_only = False
        self.aggregates = {}
        self._flushed = 0
        self._room = min(self.chunk_size, self.node_cap)
        self._last_node = None
        self._last_autograd = None
        self.in_optimizer = False
        self._ranges = []
        self._checkpoint_starts = {}
        self._recompute_hook = (None, None)
