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
from typing import Any

import torch

from gprof.capture.builder import StepBuilder
from gprof.capture.device_timing import DeviceTimer
from gprof.capture.gc_freeze import FrozenHeap
from gprof.capture.memory import StorageTracker
from gprof.capture.modules import ModuleScope
from gprof.capture.options import CaptureOptions
from gprof.capture.recorder import Recorder
from gprof.capture.state import TrainingState
from gprof.graph.model import Node, StepGraph, StepMeta
from gprof.store.runs import plugin_dir, step_filename
from gprof.store.sink import StepSink
from gprof.store.step_file import StepWriter
from gprof.store.tfevents import MarkerWriter

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
        self._writer: StepSink | None = None
        self._step_start = 0
        self._baseline_bytes = 0
        self._frozen_heap = FrozenHeap()
        self._marker: MarkerWriter | None = None
        self._kineto: Any = None

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
        self._writer = StepWriter(plugin_dir(self.logdir, self.run) / step_filename(step, rank, world)) if save else None
        self._baseline_bytes = mem.live_bytes
        builder = self._builder = StepBuilder(
            self._writer, meta, self.scope, mem.snapshot(), torch._C._autograd._get_sequence_nr(),
            keep_limit=self.options.keep_in_memory, state_params=self.state.params_by_storage())
        rec = self.recorder
        mem.op_counter = lambda: builder.n + len(rec.buffer)
        if self.options.with_kineto and save:
            self._start_kineto()
        self._step_start = time.perf_counter_ns()
        self._frozen_heap.enter()
        rec.start()

    # -------------------------------------------------------------------------- build
    def _build(self, records: Sequence[tuple]) -> Node | None:
        """The recorder's sink: build records into nodes (streamed to the step file); returns the last."""
        builder = self._builder
        assert builder is not None, "the recorder handed over records outside a step"
        return self._consume(builder, records)

    def _consume(self, builder: StepBuilder, records: Sequence[tuple]) -> Node | None:
        if self.device_timer is not None:
            builder.device_times.update(self.device_timer.resolve())
        return builder.consume(records)

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
        builder, writer = self._builder, self._writer
        self._builder = self._writer = None
        kineto_file = self._stop_kineto() if self._kineto is not None else None
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
            graph = self._finish(builder, wall, error, kineto_file)
            graph.meta.partial = partial
            self._analyse(graph, builder.keep_nodes)
            path = self._write(graph, writer)
        except BaseException:
            writer.abort()
            if error is None:
                raise
            warnings.warn("torch-gprof: could not save the partial step:\n" + traceback.format_exc(), RuntimeWarning,
                          stacklevel=2)
            return None
        self._write_marker(graph)
        for cb in list(self.on_step_saved):
            cb(graph, path)
        return graph

    def _finish(self, builder: StepBuilder, wall: int, error: BaseException | None,
                kineto_file: str | None) -> StepGraph:
        mem = self.memory
        live_sizes = {sid: nb for sid, nb, _ in mem.live.values()}
        graph = builder.finish(mem.free_events, live_sizes, self.state.categories(), self._baseline_bytes,
                               self.recorder.aggregates, late_seen=mem.late_seen)
        graph.meta.wall_ns = wall
        graph.meta.extra["start_ns"] = self._step_start
        if error is not None:
            graph.meta.complete = False
            graph.meta.error = "".join(traceback.format_exception_only(type(error), error)).strip()
        if kineto_file is not None:
            graph.meta.extra["kineto_trace"] = kineto_file
        return graph

    # -------------------------------------------------------------------------- analyse
    def _analyse(self, graph: StepGraph, have_nodes: bool) -> None:
        analyze = self.options.analyze
        if analyze and have_nodes:  # a step past keep_in_memory has no node objects to analyse
            from gprof.analyses import run_all

            graph.analyses = run_all(graph, only=None if analyze is True else list(analyze))

    # -------------------------------------------------------------------------- write
    @staticmethod
    def _write(graph: StepGraph, writer: StepSink) -> Path | None:
        for name, value in graph.analyses.items():
            writer.set_analysis(name, value)
        writer.set_modules(graph.modules.values())
        writer.set_aggregates(graph.aggregates)
        return writer.commit(graph.meta, graph.memory)

    def _write_marker(self, graph: StepGraph) -> None:
        if self._marker is None:
            self._marker = MarkerWriter(self.run_dir)
        self._marker.add(graph.meta.step, {"rank": graph.meta.rank, "nodes": graph.meta.node_count})

    # -------------------------------------------------------------------------- kineto
    def _start_kineto(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        self._kineto = profile(activities=acts, record_shapes=True, with_stack=False)
        self._kineto.__enter__()

    def _stop_kineto(self) -> str:
        prof, self._kineto = self._kineto, None
        prof.__exit__(None, None, None)
        rank, _ = self.rank
        name = f"{socket.gethostname()}_{os.getpid()}_rank{rank}.{int(time.time() * 1000)}.pt.trace.json"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(self.run_dir / name))
        return name
