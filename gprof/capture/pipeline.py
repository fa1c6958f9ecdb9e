"""The step pipeline: record -> build -> analyse -> write, driven once per recorded step.

It owns the collaborators (module scope, storage tracker, device timer, recorder) and wires them
explicitly: the recorder gets :meth:`StepPipeline._build` as the place its full chunks go, and
knows nothing of this class. ``gprof.profile`` decides *when* steps begin and end; this module
decides *what* happens at each boundary.
"""
from __future__ import annotations

import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gprof.capture.builder import StepBuilder
from gprof.capture.device_timing import DeviceTimer
from gprof.capture.gc_freeze import FrozenHeap
from gprof.capture.handoff import SpooledStep, StepEnd, StepHeader, complete_step
from gprof.capture.memory import StorageTracker
from gprof.capture.modules import ModuleScope
from gprof.capture.options import CaptureOptions
from gprof.capture.recorder import Recorder
from gprof.capture.state import TrainingState
from gprof.capture.storage import STORE_ERRORS, GuardedSink, StepStore
from gprof.graph.model import Node, StepGraph, StepMeta
from gprof.store.tfevents import MarkerWriter

if TYPE_CHECKING:
    from gprof.capture.worker import StepQueue, StepResult

StepCallback = Callable[[StepGraph, Path | None], None]


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from torch.distributed, else torchrun's environment, else (0, 1)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except (ImportError, RuntimeError):
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class StepPipeline:
    """Hooks that live for the whole ``with`` block, and the per-step begin/end that turns the
    recorder's tuples into a stored graph."""

    def __init__(self, logdir: str | os.PathLike[str], run: str, options: CaptureOptions,
                 rank: int | None = None, world_size: int | None = None) -> None:
        self.logdir = Path(logdir)
        self.run = run
        self.options = options
        self._rank_override = (rank, world_size)
        self.scope = ModuleScope()
        self.memory = StorageTracker()
        self.state = TrainingState(self.scope, self.memory)
        self.device_timer = DeviceTimer.for_current_machine()
        self.recorder = Recorder(self.memory, self.scope, self.device_timer, options, self._build)
        #: called with each saved step's graph and file (the debugger, ``on_step_saved=``)
        self.on_step_saved: list[StepCallback] = []
        self._handles: list[Any] = []
        self._builder: StepBuilder | None = None
        self._writer: GuardedSink | None = None
        #: file names, this session's id, and what could not be written (warned once)
        self.store = StepStore(self.logdir, run)
        self._step = 0  # the step being recorded
        self._step_start = 0
        self._baseline_bytes = 0
        self._frozen_heap = FrozenHeap()
        self._marker: MarkerWriter | None = None
        self._kineto: Any = None
        #: where steps are handed off to be built in the step worker (gprof/capture/worker.py); None:
        #: every step is built here, on the training thread
        self.queue: StepQueue | None = None
        self._spool: SpooledStep | None = None
        #: called with each saved step's graph, or a ``LazyGraph`` of a handed-off one, that has nodes
        self.on_kept: Callable[[Any], None] = lambda graph: None

    @property
    def run_dir(self) -> Path:
        return self.logdir / self.run

    @property
    def rank(self) -> tuple[int, int]:
        """(rank, world size): the profile's overrides, else what the process group says."""
        r, w = distributed_rank()
        return (self._rank_override[0] if self._rank_override[0] is not None else r,
                self._rank_override[1] if self._rank_override[1] is not None else w)

    @property
    def recording(self) -> bool:
        return self.recorder.recording

    # -------------------------------------------------------------------------- block hooks
    def open(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        self.store.open()
        self.scope.on_region_end = self.recorder.region_end
        self.scope.install()
        # the optimizer *phase* comes from Optimizer.step's record_function range (see recorder),
        # which also closes when step() raises; this hook only learns which optimizers exist
        self._handles = [register_optimizer_step_pre_hook(lambda opt, args, kwargs: self.state.optimizers.add(opt))]

    def close(self) -> None:
        if self.recording:
            self.end_step(save=False)
        for h in self._handles:
            h.remove()
        self._handles = []
        self.scope.uninstall()
        if self.queue is not None:  # after the hooks are gone: a Ctrl-C here leaves the rest to the exit drain
            self.queue.drain()
        if self._marker is not None:
            self._marker.close()
            self._marker = None

    # -------------------------------------------------------------------------- record
    def begin_step(self, step: int, save: bool) -> None:
        """Start recording step ``step``; ``save=False`` records it (a warmup step) but stores nothing."""
        rank, world = self.rank
        mem = self.memory
        state = [t for ts in self.state.tensors().values() for t in ts]
        keep = set()
        for t in state:
            try:
                keep.add(t.untyped_storage()._cdata)
            except (RuntimeError, NotImplementedError):
                continue
        mem.forget_except(keep)
        mem.register_tensors(state)  # model and optimizer state count from the first op
        mem.free_events = []
        mem.late_seen = []
        mem.freed_since = 0
        self.scope.reset_stacks()
        meta = StepMeta(
            run=self.run, step=step, rank=rank, world_size=world, torch_version=torch.__version__,
            hostname=socket.gethostname(), pid=os.getpid(), created=time.time(),
        )
        if self.options.target is not None:  # in the meta, so the step worker analyses for it too
            meta.extra["fusion_target"] = {"target": self.options.target, "gpu": self.options.gpu}
        self._baseline_bytes = mem.live_bytes
        self._step = step
        rec = self.recorder
        queue = self.queue
        # observers need nodes at once; once writing failed, steps are kept in memory, built here
        if save and queue is not None and queue.usable and not rec.observers and self.store.failed is None:
            path, fallback = self.store.begin(meta)
            spool = self._spool = queue.open_step(StepHeader(
                meta, path, torch._C._autograd._get_sequence_nr(), mem.snapshot(),
                self.state.params_by_storage(), self.options.keep_in_memory, self.options.analyze, os.getcwd(),
                fallback=fallback))
            mem.op_counter = lambda: spool.n + len(rec.buffer)
        else:
            if save and queue is not None:
                queue.drain()  # steps are saved in order: the handed-off ones first
            self._writer = self.store.sink(meta) if save else None
            builder = self._builder = StepBuilder(
                self._writer, meta, self.scope, mem.snapshot(), torch._C._autograd._get_sequence_nr(),
                keep_limit=self.options.keep_in_memory, state_params=self.state.params_by_storage())
            mem.op_counter = lambda: builder.n + len(rec.buffer)
        if self.options.with_kineto and save and self.store.failed is None:
            self._start_kineto()
        self._step_start = time.perf_counter_ns()
        self._frozen_heap.enter()
        rec.start()

    # -------------------------------------------------------------------------- build
    def _build(self, records: Sequence[tuple]) -> Node | None:
        """The recorder's sink: build records into nodes (streamed to the step file); returns the last.
        A handed-off step spools them instead (no observer waits for a node then)."""
        if self._spool is not None:
            if not self.recorder.observers:
                self._spool.add(records, self._device_times(), self.scope.params)
                return None
            spool, self._spool = self._spool, None  # an observer came mid-step: build here from now on,
            if self.queue is not None:  # after the steps handed off before it
                self.queue.drain()
            taken, self._writer = spool.take_back(self.scope)
            self._builder = taken
            self.memory.op_counter = lambda: taken.n + len(self.recorder.buffer)
        builder = self._builder
        assert builder is not None, "the recorder handed over records outside a step"
        return self._consume(builder, records)

    def _consume(self, builder: StepBuilder, records: Sequence[tuple]) -> Node | None:
        builder.device_times.update(self._device_times())
        return builder.consume(records)

    def _device_times(self) -> dict[int, int]:
        return self.device_timer.resolve() if self.device_timer is not None else {}

    def end_step(self, save: bool = True, error: BaseException | None = None,
                 partial: bool = False) -> StepGraph | None:
        """Stop recording; build, analyse and (if ``save``) write the step. Never raises for a
        problem in the recorded data: the user's own exception is what must propagate.
        ``partial`` marks the step as the ops after the last step boundary (see StepMeta.partial)."""
        if not self.recording:
            return None
        try:  # the heap stays frozen while the step is built: its graph is new objects too
            return self._end_step(save, error, partial)
        finally:
            self._frozen_heap.exit()

    def _end_step(self, save: bool, error: BaseException | None, partial: bool) -> StepGraph | None:
        rec = self.recorder
        rest = rec.stop()
        wall = time.perf_counter_ns() - self._step_start
        builder, writer, spool = self._builder, self._writer, self._spool
        self._builder = self._writer = self._spool = None
        kineto_file = self._stop_kineto() if self._kineto is not None else None
        if spool is not None:
            if save:
                self._hand_off(spool, rest, self._step_end(wall, error, kineto_file, partial))
            else:
                spool.discard()
            return None
        assert builder is not None
        if not save or writer is None:
            if writer is not None:
                writer.abort()
            if self.device_timer is not None:
                self.device_timer.discard()
            return None
        if builder.n == 0 and not rest and not rec.aggregates and error is None:
            writer.abort()  # an empty tail after the last prof.step()
            return None
        try:
            self._consume(builder, rest)
            graph, path = complete_step(builder, self._step_end(wall, error, kineto_file, partial),
                                        self.options.analyze, writer)
        except BaseException:
            writer.abort()
            if error is None:
                raise
            warnings.warn("torch-gprof: could not save the partial step:\n" + traceback.format_exc(), RuntimeWarning,
                          stacklevel=2)
            return None
        if self.store.written(graph.meta, path, writer.error, writer.where):
            self._write_marker(graph.meta)
        for cb in list(self.on_step_saved):
            cb(graph, path)
        return graph

    def _step_end(self, wall: int, error: BaseException | None, kineto_file: str | None,
                  partial: bool) -> StepEnd:
        mem = self.memory
        return StepEnd(
            mem.free_events, {sid: nb for sid, nb, _ in mem.live.values()}, self.state.categories(),
            self._baseline_bytes, self.recorder.aggregates, mem.late_seen, wall, self._step_start,
            error=None if error is None else "".join(traceback.format_exception_only(type(error), error)).strip(),
            kineto_file=kineto_file, partial=partial)

    # -------------------------------------------------------------------------- hand-off
    def _hand_off(self, spool: SpooledStep, rest: list[tuple], end: StepEnd) -> None:
        """Spool the step's last records and its end, and queue it for the worker. The profiler never
        stops training: a step that cannot be spooled is named as lost."""
        assert self.queue is not None
        try:
            if spool.n == 0 and not rest and not end.aggregates and end.error is None:
                spool.discard()  # an empty tail after the last prof.step()
                return
            if rest:
                spool.add(rest, self._device_times(), self.scope.params)
            end.types, end.builtin = dict(self.scope.types), dict(self.scope.builtin)
            spool.finish(end)
        except Exception:
            spool.discard()
            warnings.warn(f"torch-gprof: step {spool.step} is lost: it could not be handed to the step worker:\n"
                          + traceback.format_exc(), RuntimeWarning, stacklevel=4)
            return
        self.queue.submit(spool, pickled=bool(self.on_step_saved))  # a callback wants each graph at once

    def step_written(self, result: StepResult) -> None:
        """A handed-off step was written (by the worker, or here after it died): what
        :meth:`_end_step` does after an in-process write."""
        if self.store.written(result.meta, result.path, result.store_error, result.where):
            self._write_marker(result.meta)
        if result.graph.has_nodes:
            self.on_kept(result.graph)
        if self.on_step_saved:
            graph = result.graph.load()
            for cb in list(self.on_step_saved):
                cb(graph, result.path)

    # -------------------------------------------------------------------------- write
    def _write_marker(self, meta: StepMeta) -> None:
        try:
            if self._marker is None:
                self._marker = MarkerWriter(self.run_dir)
            self._marker.add(meta.step, {"rank": meta.rank, "nodes": meta.node_count})
        except STORE_ERRORS as e:
            self.store.failure(meta.step, self.run_dir, e)

    # -------------------------------------------------------------------------- kineto
    def _start_kineto(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        self._kineto = profile(activities=acts, record_shapes=True, with_stack=False)
        self._kineto.__enter__()

    def _stop_kineto(self) -> str | None:
        prof, self._kineto = self._kineto, None
        prof.__exit__(None, None, None)
        rank, _ = self.rank
        name = f"{socket.gethostname()}_{os.getpid()}_rank{rank}.{int(time.time() * 1000)}.pt.trace.json"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            prof.export_chrome_trace(str(self.run_dir / name))
        except STORE_ERRORS as e:
            self.store.failure(self._step, self.run_dir / name, e)
            return None
        return name
