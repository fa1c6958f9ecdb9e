"""``gprof.profile``: the context manager users wrap their training loop in."""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

import torch
from torch.profiler import ProfilerAction
from torch.profiler import schedule as _torch_schedule

from gprof.analyses.runner import check_target
from gprof.capture.options import CaptureOptions
from gprof.capture.pipeline import StepCallback, StepPipeline
from gprof.graph.model import StepGraph
from gprof.store.runs import plugin_dir

#: called as ``obs(node, func, args, kwargs, out)`` after each recorded op (see :meth:`profile.add_observer`)
Observer = Callable[..., None]
StepBoundary = Literal["manual", "optimizer"]

#: ``gprof.schedule(wait=, warmup=, active=, repeat=, skip_first=)`` is torch.profiler's own
#: schedule, so the conventions (and off-by-ones) are exactly the ones users know.
schedule = _torch_schedule


def _check_run_name(run: str) -> str:
    """A run is a path *inside* the logdir (nested names like ``sweep/lr1e-3`` are fine)."""
    if not isinstance(run, str):
        raise TypeError(f"run must be a str (a name like 'exp1'), got {type(run).__name__} {run!r}")
    parts = run.replace("\\", "/").split("/")
    if not run or os.path.isabs(run) or any(p in ("", ".", "..") for p in parts) or "\0" in run:
        raise ValueError(
            f"bad run name {run!r}: use a relative name inside the logdir, like 'exp1' or 'sweep/lr1e-3' "
            "(no '..', no absolute paths, no empty parts)")
    return run


def _check_int(name: str, value: object, lo: int, hi: int | None = None, optional: bool = False) -> None:
    """Option checks up front: a wrong type would otherwise surface as a raw traceback deep in the
    first step, and a float node cap would be silently compared as one."""
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {'between ' + str(lo) + ' and ' + str(hi) if hi is not None else 'at least ' + str(lo)}, "
                         f"got {value}")


def _check_logdir(logdir: object) -> Path:
    if not isinstance(logdir, (str, os.PathLike)):
        raise TypeError(f"logdir must be a path (str or os.PathLike), got {type(logdir).__name__} {logdir!r}")
    path = Path(logdir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"logdir {str(path)!r} is a file, not a directory: pass the directory runs go under")
    return path


def _default_run_name() -> str:
    return os.environ.get("GPROF_RUN") or time.strftime("run-%Y%m%d-%H%M%S")


class profile:
    """Record every op of every recorded step as a graph node, and store each step.

    Options keep torch.profiler's names. ``record_shapes``, ``profile_memory`` and ``with_stack``
    default to on, since the graph is the product; ``node_cap`` bounds a step's node count (past it
    the step is recorded as per-op aggregates only) and ``keep_in_memory`` bounds how large a step
    may be and still be analysed and kept in ``prof.graphs``. ``tensor_preview=N`` stores the first N
    values of every output in ``node.attrs["preview"]`` (off by default: it costs a copy per op).

    ``step_boundary`` says where one training step ends: ``"manual"`` (default) at each
    ``prof.step()``, as torch.profiler; ``"optimizer"`` at the end of every ``Optimizer.step()`` in
    the block, for loops that cannot call ``prof.step()``. Then ``prof.step()`` is a no-op (with a
    warning once), and ops after the last optimizer step are saved, if there are any and at least
    one whole step was, as a step with ``meta.partial = True``.

    ``target`` (``"cpu"`` or ``"cuda"``) is the fusion target the stored prediction is made for, and ``gpu``
    the GPU a cuda prediction is priced for (a name of ``gprof.analyses.gpu_specs.GPUS``, implies ``cuda``);
    the default is the device the step ran on (its GPU when known). Readers re-target a stored step anyway
    (``torch-gprof report RUN --target cuda``).

    ``worker=True`` (default) hands each step's records to a worker process that builds, analyses and
    writes it while training goes on (gprof/capture/worker.py): ``prof.step()`` costs the hand-off
    only, and leaving the block waits for the last write. ``prof.graphs`` and step callbacks see a
    step once it is written. ``worker=False``, and any step recorded while an observer (the
    debugger) is attached, is built in-process, on the training thread.
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
        on_step_saved: StepCallback | None = None,
        step_boundary: StepBoundary = "manual",
        worker: bool = True,
        target: str | None = None,
        gpu: str | None = None,
    ) -> None:
        _check_int("node_cap", node_cap, 1)
        _check_int("keep_in_memory", keep_in_memory, 0)
        _check_int("tensor_preview", tensor_preview, 0, 4096)
        _check_int("rank", rank, 0, optional=True)
        _check_int("world_size", world_size, 1, optional=True)
        if step_boundary not in ("manual", "optimizer"):
            raise ValueError(f"step_boundary must be 'manual' or 'optimizer', got {step_boundary!r}")
        target, gpu = check_target(target, gpu)
        self.schedule = schedule
        self.step_boundary = step_boundary
        options = CaptureOptions(
            record_shapes=record_shapes, profile_memory=profile_memory, with_stack=with_stack,
            with_kineto=with_kineto, node_cap=node_cap, keep_in_memory=keep_in_memory,
            tensor_preview=tensor_preview, analyze=analyze, target=target, gpu=gpu,
        )
        #: the step pipeline (internal: use the methods below, not its fields)
        self.session = StepPipeline(_check_logdir(logdir), _check_run_name(_default_run_name() if run is None else run), options,
                                    rank=rank, world_size=world_size)
        if on_step_saved is not None:
            self.session.on_step_saved.append(on_step_saved)
        self.step_num = 0
        self.worker = worker and os.name == "posix"  # the worker's socket is handed over by fd
        self._graphs: list[Any] = []  # StepGraph, or a handed-off step's LazyGraph until first read
        self.session.on_kept = self._graphs.append
        self._active = False
        self._boundary_hook: Any = None
        self._warned_manual_step = False

    # -------------------------------------------------------------------------- public surface
    @property
    def graphs(self) -> list[StepGraph]:
        """Graphs of the saved steps that were small enough to keep (see ``keep_in_memory``); a
        handed-off step appears once the worker has written it, and is read from its step file on
        first use (exactly the graph that was built; a file removed meanwhile raises RuntimeError)."""
        if self.session.queue is not None:
            self.session.queue.collect()
        g = self._graphs
        for i, item in enumerate(g):
            if not isinstance(item, StepGraph):
                g[i] = item.load()
        return g

    @property
    def run_dir(self) -> Path:
        """``<logdir>/<run>``: what TensorBoard and ``torch-gprof report`` are pointed at."""
        return self.session.run_dir

    @property
    def data_dir(self) -> Path:
        """Where this run's step files (and the debugger's address files) live."""
        return plugin_dir(self.session.logdir, self.session.run)

    @property
    def rank(self) -> int:
        return self.session.rank[0]

    @property
    def world_size(self) -> int:
        return self.session.rank[1]

    def add_observer(self, obs: Observer) -> None:
        """Call ``obs(node, func, args, kwargs, out)`` after every recorded op, with the op's built
        graph node (stable key included) and its live tensors: what a debugger pauses on. It runs
        inside the dispatch mode, so torch ops it runs are not recorded, and it makes each op be
        built at once instead of after the step (slower)."""
        self.session.recorder.observers.append(obs)

    def remove_observer(self, obs: Observer) -> None:
        """Stop calling ``obs``; one that was never added is ignored."""
        observers = self.session.recorder.observers
        if obs in observers:
            observers.remove(obs)

    def add_failure_observer(self, obs: Observer) -> None:
        """Call ``obs(func, args, kwargs, error, module)`` when a recorded op raises, before the
        exception propagates: the op's inputs and the user's frames are still alive (a debugger's
        post-mortem). ``module`` is the innermost module running, or None."""
        self.session.recorder.failure_observers.append(obs)

    def remove_failure_observer(self, obs: Observer) -> None:
        """Stop calling ``obs``; one that was never added is ignored."""
        observers = self.session.recorder.failure_observers
        if obs in observers:
            observers.remove(obs)

    def add_step_callback(self, fn: StepCallback) -> None:
        """Call ``fn(graph, path)`` after each step is saved (``path``: its file, None if not written)."""
        self.session.on_step_saved.append(fn)

    def remove_step_callback(self, fn: StepCallback) -> None:
        """Stop calling ``fn``; one that was never added is ignored."""
        callbacks = self.session.on_step_saved
        if fn in callbacks:
            callbacks.remove(fn)

    def param_names(self) -> dict[int, str]:
        """``id(parameter)`` -> qualified name (``encoder.layers.0.linear1.weight``) of every
        parameter of the modules seen so far, for parameters still alive."""
        return {pid: name for pid, (ref, name) in list(self.session.scope.params.items()) if ref() is not None}

    def state_names(self) -> dict[int, str]:
        """``id(tensor)`` -> what the tensor is, for the training state a step reads from outside:
        ``parameter enc.weight``, ``buffer norm.running_mean``, ``gradient of enc.weight``,
        ``optimizer state exp_avg of enc.weight``. For a debugger naming where a NaN came from."""
        params = self.param_names()
        out = {pid: f"parameter {name}" for pid, name in params.items()}
        for mod, fqn in list(self.session.scope._names.items()):
            for bname, b in mod.named_buffers(recurse=False):
                if b is not None:
                    out[id(b)] = f"buffer {fqn + '.' if fqn else ''}{bname}"
            for p in mod.parameters(recurse=False):
                if p.grad is not None and id(p) in params:
                    out[id(p.grad)] = f"gradient of {params[id(p)]}"
        for opt in list(self.session.state.optimizers):
            for param, state in opt.state.items():
                owner = params.get(id(param), "a parameter")
                for key, v in state.items():
                    if isinstance(v, torch.Tensor):
                        out[id(v)] = f"optimizer state {key} of {owner}"
        return out

    # -------------------------------------------------------------------------- steps
    def _action(self) -> ProfilerAction:
        return ProfilerAction.RECORD if self.schedule is None else self.schedule(self.step_num)

    def _begin(self) -> None:
        action = self._action()
        if action != ProfilerAction.NONE:
            self.session.begin_step(self.step_num, save=action != ProfilerAction.WARMUP)

    def _end(self, error: BaseException | None = None, partial: bool = False) -> None:
        graph = self.session.end_step(save=True, error=error, partial=partial)
        if graph is not None and graph.nodes:
            self._graphs.append(graph)

    def _next_step(self) -> None:
        self._end()
        self.step_num += 1
        self._begin()

    #: called with each profile as it is entered (e.g. ``torch-gprof debug`` attaches its debugger
    #: to every profile a script opens)
    enter_hooks: ClassVar[list[Callable[[profile], None]]] = []

    def __enter__(self) -> profile:
        if self._active:  # a second enter would install every hook twice: each op recorded twice
            raise RuntimeError("this gprof.profile is already active: a profile is entered once at a time "
                               "(`with prof:` inside `with prof:`); use one block, or a second gprof.profile")
        for hook in list(profile.enter_hooks):
            hook(self)
        if self.worker and not self.session.recorder.observers:  # the debugger's steps stay in-process
            self._start_worker()
        self.session.open()
        if self.step_boundary == "optimizer":
            from torch.optim.optimizer import register_optimizer_step_post_hook

            self._boundary_hook = register_optimizer_step_post_hook(self._on_optimizer_step)
        self._active = True
        self._begin()
        return self

    def _start_worker(self) -> None:
        from gprof.capture.worker import StepQueue

        try:
            self.session.queue = StepQueue(self.session.step_written)
        except OSError as e:
            warnings.warn(f"torch-gprof: could not start the step worker ({e}); steps are built on the training "
                          "thread", RuntimeWarning, stacklevel=3)

    def _on_optimizer_step(self, opt: Any, args: Any, kwargs: Any) -> None:
        # Runs inside Optimizer.step's record_function range; the recorder drops the range's exit
        # marker that the next step sees, so the new step starts outside the optimizer phase.
        if self._active:
            self._next_step()

    def step(self) -> None:
        """Mark the end of a training step (as ``torch.profiler.profile.step``). With
        ``step_boundary="optimizer"`` the optimizer marks steps, and this call does nothing."""
        if not self._active:
            raise RuntimeError("prof.step() called outside the `with gprof.profile(...)` block")
        if self.step_boundary == "optimizer":
            if not self._warned_manual_step:
                self._warned_manual_step = True
                warnings.warn("torch-gprof: prof.step() does nothing with step_boundary='optimizer': each "
                              "optimizer.step() already ends a step", RuntimeWarning, stacklevel=2)
            return
        self._next_step()

    def stop(self, save: bool = True) -> None:
        """Leave the block here, as its end would; ``save=False`` drops the step in progress instead of
        saving it, for ops that are not training (``torch-gprof debug``'s launching process once it has
        spawned the ranks that train: gprof/debug/spawn.py). The block's own end then does nothing."""
        self._finish(None, save)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._finish(exc, save=True)

    def _finish(self, exc: BaseException | None, save: bool) -> None:
        if not self._active:  # stopped already
            return
        try:
            if save:  # after the last optimizer step, what is left is not a whole training step
                self._end(error=exc, partial=self.step_boundary == "optimizer" and self.step_num > 0)
            else:
                self.session.end_step(save=False)
        finally:
            self._active = False
            if self._boundary_hook is not None:
                self._boundary_hook.remove()
                self._boundary_hook = None
            self.session.close()
