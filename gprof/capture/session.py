"""One profiling session: the hooks that live for the whole ``with`` block, and the per-step
begin/end that turns the recorder's tuples into a stored graph."""
from __future__ import annotations

import os
import socket
import time
import traceback
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import gprof
from gprof.capture.builder import StepBuilder
from gprof.capture.device_timing import DeviceTimer
from gprof.capture.gc_freeze import FrozenHeap
from gprof.capture.memory import StorageTracker
from gprof.capture.modules import ModuleScope
from gprof.capture.recorder import Recorder
from gprof.graph.model import StepGraph, StepMeta
from gprof.store.runs import plugin_dir, step_filename
from gprof.store.step_file import StepWriter
from gprof.store.tfevents import MarkerWriter


def _internal_prefixes() -> tuple[str, ...]:
    import contextlib
    import threading as _th

    dirs = {os.path.dirname(torch.__file__), os.path.dirname(gprof.__file__),
            os.path.dirname(contextlib.__file__) + os.sep + "contextlib.py",
            _th.__file__}
    return tuple(sorted(dirs))


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from torch.distributed, else torchrun's environment, else (0, 1)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except (ImportError, RuntimeError):
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Session:
    def __init__(self, logdir: str | os.PathLike[str], run: str, *, record_shapes: bool, profile_memory: bool,
                 with_stack: bool, node_cap: int, keep_in_memory: int, analyze: bool | list[str],
                 rank: int | None, world_size: int | None, with_kineto: bool, tensor_preview: int = 0,
                 chunk_size: int = 50_000) -> None:
        self.logdir = Path(logdir)
        self.run = run
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.node_cap = node_cap
        self.keep_in_memory = keep_in_memory
        self.analyze = analyze
        self.with_kineto = with_kineto
        self.chunk_size = chunk_size
        self.tensor_preview = tensor_preview
        self._rank_override = (rank, world_size)
        self.internal_prefixes = _internal_prefixes()
        self.scope = ModuleScope()
        self.memory = StorageTracker()
        self.device_timer = DeviceTimer.for_current_machine()
        self.recorder = Recorder(self)
        self.optimizers: weakref.WeakSet[torch.optim.Optimizer] = weakref.WeakSet()
        self._handles: list[Any] = []
        self._builder: StepBuilder | None = None
        self._writer: StepWriter | None = None
        self._recording = False
        self._step_start = 0
        self._frozen_heap = FrozenHeap()
        self._marker: MarkerWriter | None = None
        self._kineto: Any = None
        self.on_step_saved: list[Callable[[StepGraph, Path | None], None]] = []

    @property
    def run_dir(self) -> Path:
        return self.logdir / self.run

    @property
    def rank(self) -> tuple[int, int]:
        r, w = distributed_rank()
        return (self._rank_override[0] if self._rank_override[0] is not None else r,
                self._rank_override[1] if self._rank_override[1] is not None else w)

    # -------------------------------------------------------------------------- session hooks
    def open(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        self.scope.on_region_end = self.recorder._region_end
        self.scope.install()
        self._handles = [
            register_optimizer_step_pre_hook(self._opt_pre),
        ]

    def close(self) -> None:
        if self._recording:
            self.end_step(save=False)
        for h in self._handles:
            h.remove()
        self._handles = []
        self.scope.uninstall()
        if self._marker is not None:
            self._marker.close()
            self._marker = None

    def _opt_pre(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # the optimizer *phase* comes from Optimizer.step's record_function range (see recorder),
        # which also closes when step() raises; this hook only learns which optimizers exist
        self.optimizers.add(opt)

    # -------------------------------------------------------------------------- categories
    def _state_tensors(self) -> dict[str, list[torch.Tensor]]:
        out: dict[str, list[torch.Tensor]] = {"parameter": [], "buffer": [], "gradient": [], "optimizer": []}
        for mod in self.scope.known_modules():
            for p in mod.parameters(recurse=False):
                out["parameter"].append(p)
                if p.grad is not None:
                    out["gradient"].append(p.grad)
            out["buffer"].extend(b for b in mod.buffers(recurse=False) if b is not None)
        for opt in list(self.optimizers):
            for state in opt.state.values():
                out["optimizer"].extend(v for v in state.values() if isinstance(v, torch.Tensor))
        return out

    def _state_modules(self) -> dict[int, str]:
        """Storage id -> owning module for parameters, their grads and their optimizer state."""
        out: dict[int, str] = {}
        sid_of = self.memory.sid_of
        by_param: dict[int, str] = {}
        for pid, (ref, name) in self.scope.params.items():
            p = ref()
            if p is None:
                continue
            mod = name.rpartition(".")[0]
            by_param[pid] = mod
            for t in (p, p.grad):
                if t is not None:
                    sid = sid_of(t)
                    if sid is not None:
                        out[sid] = mod
        for opt in list(self.optimizers):
            for p, state in opt.state.items():
                mod = by_param.get(id(p))
                if mod is None:
                    continue
                for v in state.values():
                    if isinstance(v, torch.Tensor):
                        sid = sid_of(v)
                        if sid is not None:
                            out[sid] = mod
        return out

    def _categories(self) -> dict[int, str]:
        cats: dict[int, str] = {}
        # later categories win, as in MemTracker: a gradient is never counted as a parameter
        for cat, ts in self._state_tensors().items():
            for t in ts:
                sid = self.memory.sid_of(t)
                if sid is not None:
                    cats[sid] = cat
        return cats

    # -------------------------------------------------------------------------- steps
    def begin_step(self, step: int, save: bool) -> None:
        rank, world = self.rank
        state = [t for ts in self._state_tensors().values() for t in ts]
        keep = set()
        for t in state:
            try:
                keep.add(t.untyped_storage()._cdata)
            except (RuntimeError, NotImplementedError):
                continue
        self.memory.forget_except(keep)
        self.memory.register_tensors(state)  # model and optimizer state count from the first op
        self.memory.free_events = []
        self.memory.late_seen = []
        self.memory.freed_since = 0
        self.recorder.reset_step()
        self.scope.reset_stacks()
        meta = StepMeta(
            run=self.run, step=step, rank=rank, world_size=world, torch_version=torch.__version__,
            hostname=socket.gethostname(), pid=os.getpid(), created=time.time(),
        )
        self._writer = StepWriter(plugin_dir(self.logdir, self.run) / step_filename(step, rank, world)) if save else None
        baseline = self.memory.snapshot()
        self._baseline_bytes = self.memory.live_bytes
        self._builder = StepBuilder(self._writer, meta, self.scope, baseline, torch._C._autograd._get_sequence_nr(),
                                    keep_limit=self.keep_in_memory, state_modules=self._state_modules())
        rec = self.recorder
        builder = self._builder

        timer = self.device_timer

        def flush() -> None:
            buf = rec.buffer
            rec.buffer = []
            if timer is not None:
                builder.device_times.update(timer.resolve())
            builder.consume(buf)

        def build_last() -> Any:
            if timer is not None:
                builder.device_times.update(timer.resolve())
            return builder.consume((rec.buffer.pop(),))

        rec.flush = flush
        rec.build_last = build_last
        self.memory.op_counter = lambda: builder.n + len(rec.buffer)
        if self.with_kineto and save:
            self._start_kineto()
        self._recording = True
        self._step_start = time.perf_counter_ns()
        self._frozen_heap.enter()
        rec.__enter__()

    def end_step(self, save: bool = True, error: BaseException | None = None) -> StepGraph | None:
        """Stop recording; build, analyse and (if ``save``) write the step. Never raises for a
        problem in the recorded data: the user's own exception is what must propagate."""
        if not self._recording:
            return None
        try:  # the heap stays frozen while the step is built: its graph is new objects too
            return self._end_step(save, error)
        finally:
            self._frozen_heap.exit()

    def _end_step(self, save: bool, error: BaseException | None) -> StepGraph | None:
        rec = self.recorder
        rec.__exit__(None, None, None)
        wall = time.perf_counter_ns() - self._step_start
        self._recording = False
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
        if builder.n == 0 and not rec.buffer and not rec.aggregates and error is None:
            writer.abort()  # an empty tail after the last prof.step()
            return None
        try:
            if self.device_timer is not None:
                builder.device_times.update(self.device_timer.resolve())
            builder.consume(rec.buffer)
            rec.buffer = []
            live_sizes = {sid: nb for sid, nb, _ in self.memory.live.values()}
            graph = builder.finish(self.memory.free_events, live_sizes, self._categories(),
                                   self._baseline_bytes, rec.aggregates, late_seen=self.memory.late_seen)
            graph.meta.wall_ns = wall
            graph.meta.extra["start_ns"] = self._step_start
            if error is not None:
                graph.meta.complete = False
                graph.meta.error = "".join(traceback.format_exception_only(type(error), error)).strip()
            if kineto_file is not None:
                graph.meta.extra["kineto_trace"] = kineto_file
            if self.analyze and builder.keep_nodes:
                from gprof.analyses import run_all

                graph.analyses = run_all(graph, only=None if self.analyze is True else list(self.analyze))
            for name, value in graph.analyses.items():
                writer.set_analysis(name, value)
            writer.set_modules(graph.modules.values())
            writer.set_aggregates(graph.aggregates)
            path = writer.commit(graph.meta, graph.memory)
        except BaseException:
            writer.abort()
            if error is None:
                raise
            warnings.warn("torch-gprof: could not save the partial step:\n" + traceback.format_exc(), RuntimeWarning)
            return None
        self._write_marker(graph)
        for cb in self.on_step_saved:
            cb(graph, path)
        return graph

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
