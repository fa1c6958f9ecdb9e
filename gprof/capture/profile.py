"""``gprof.profile``: the context manager users wrap their training loop in."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from torch.profiler import ProfilerAction
from torch.profiler import schedule as _torch_schedule

from gprof.capture.session import Session
from gprof.graph.model import StepGraph

#: ``gprof.schedule(wait=, warmup=, active=, repeat=, skip_first=)`` is torch.profiler's own
#: schedule, so the conventions (and off-by-ones) are exactly the ones users know.
schedule = _torch_schedule


def _check_run_name(run: str) -> str:
    """A run is a path *inside* the logdir (nested names like ``sweep/lr1e-3`` are fine)."""
    parts = run.replace("\\", "/").split("/")
    if not run or os.path.isabs(run) or any(p in ("", ".", "..") for p in parts) or "\0" in run:
        raise ValueError(
            f"bad run name {run!r}: use a relative name inside the logdir, like 'exp1' or 'sweep/lr1e-3' "
            "(no '..', no absolute paths, no empty parts)")
    return run


def _default_run_name() -> str:
    return os.environ.get("GPROF_RUN") or time.strftime("run-%Y%m%d-%H%M%S")


class profile:
    """Record every op of every recorded step as a graph node, and store each step.

    Options keep torch.profiler's names. ``record_shapes``, ``profile_memory`` and ``with_stack``
    default to on, since the graph is the product; ``node_cap`` bounds a step's node count (past it
    the step is recorded as per-op aggregates only) and ``keep_in_memory`` bounds how large a step
    may be and still be analysed and kept in ``prof.graphs``. ``tensor_preview=N`` stores the first N
    values of every output in ``node.attrs["preview"]`` (off by default: it costs a copy per op).
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str] = "runs",
        run: str | None = None,
        *,
        schedule: Callable[[int], ProfilerAction] | None = None,
        record_shapes: bool = True,
        profile_memory: bool = True,
        with_stack: bool = True,
        with_kineto: bool = False,
        node_cap: int = 5_000_000,
        keep_in_memory: int = 300_000,
        tensor_preview: int = 0,
        analyze: bool | list[str] = True,
        rank: int | None = None,
        world_size: int | None = None,
        on_step_saved: Callable[[StepGraph, Path | None], None] | None = None,
    ) -> None:
        if node_cap < 1:
            raise ValueError(f"node_cap must be at least 1, got {node_cap}")
        if not 0 <= tensor_preview <= 4096:
            raise ValueError(f"tensor_preview must be between 0 and 4096 elements, got {tensor_preview}")
        self.schedule = schedule
        self.session = Session(
            logdir, _check_run_name(_default_run_name() if run is None else run),
            record_shapes=record_shapes, profile_memory=profile_memory, with_stack=with_stack,
            node_cap=node_cap, keep_in_memory=keep_in_memory, analyze=analyze, rank=rank, world_size=world_size, with_kineto=with_kineto, tensor_preview=tensor_preview,
        )
        if on_step_saved is not None:
            self.session.on_step_saved.append(on_step_saved)
        self.step_num = 0
        #: graphs of the saved steps that were small enough to keep (see ``keep_in_memory``)
        self.graphs: list[StepGraph] = []
        self._active = False

    @property
    def run_dir(self) -> Path:
        return self.session.run_dir

    @property
    def recorder(self):
        return self.session.recorder

    def _action(self) -> ProfilerAction:
        return ProfilerAction.RECORD if self.schedule is None else self.schedule(self.step_num)

    def _begin(self) -> None:
        action = self._action()
        if action != ProfilerAction.NONE:
            self.session.begin_step(self.step_num, save=action != ProfilerAction.WARMUP)

    def _end(self, error: BaseException | None = None) -> None:
        graph = self.session.end_step(save=True, error=error)
        if graph is not None and graph.nodes:
            self.graphs.append(graph)

    #: called with each profile as it is entered (e.g. ``torch-gprof debug`` attaches its debugger
    #: to every profile a script opens)
    enter_hooks: ClassVar[list[Callable[[profile], None]]] = []

    def __enter__(self) -> profile:
        for hook in list(profile.enter_hooks):
            hook(self)
        self.session.open()
        self._active = True
        self._begin()
        return self

    def step(self) -> None:
        """Mark the end of a training step (as ``torch.profiler.profile.step``)."""
        if not self._active:
            raise RuntimeError("prof.step() called outside the `with gprof.profile(...)` block")
        self._end()
        self.step_num += 1
        self._begin()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._end(error=exc)
        finally:
            self._active = False
            self.session.close()
