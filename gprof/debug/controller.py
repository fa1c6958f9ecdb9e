"""The debugger proper: a recorder observer that decides where to pause, and the pause itself.

A pause is a blocking wait *on the thread that ran the op* (autograd may run backward on a device
thread, where no UI can live). The UI talks to this object from the server thread; work that
touches the paused op's tensors or frames (evaluate, save) is queued to the paused thread and run
there, still inside ``__torch_dispatch__``, so it is never recorded. Nothing here writes a tensor.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch

from gprof.debug.anomaly import AnomalyTracker, Finding, uninitialized
from gprof.debug.frames import frame_info, frame_namespace, internal_dirs, source_context, user_frames
from gprof.debug.spec import Breakpoint, parse_breakpoint, unmatched_reason
from gprof.debug.tensors import absmax, iter_tensors, summarize
from gprof.graph.model import Node

Event = dict[str, Any]
RESUME_MODES = ("continue", "step", "next", "finish")
_MAX_REPR = 4000
STOP_MESSAGE = "stopped from the torch-gprof debugger"
#: exceptions that end a program on purpose (sys.exit, Ctrl+C, the stop key): no post-mortem
_NOT_FAILURES = ("SystemExit", "KeyboardInterrupt", "GeneratorExit")


@dataclass
class _Paused:
    info: dict[str, Any]
    ins: list[torch.Tensor]
    outs: list[torch.Tensor]
    frames: list[FrameType] = field(default_factory=list)


@dataclass
class _Failure:
    """An op that raised, kept until the step ends: the post-mortem pauses only if the exception
    left the step (code that catches its own exceptions is no failure)."""

    error: BaseException
    info: dict[str, Any]
    ins: list[torch.Tensor]
    frames: list[FrameType]


def _within(module: str | None, scope: str | None) -> bool:
    if scope is None or module is None:
        return module == scope
    return scope == "" or module == scope or module.startswith(scope + ".")


def _error_line(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()


class Debugger:
    """An observer for ``prof.add_observer``; pauses on breakpoints and stepping commands.

    Training must never hang because of the debugger when nobody is there to resume it: with no
    client attached, a breakpoint hit is logged to stderr and recorded on the node
    (``node.attrs["breakpoint_hit"]``) instead of pausing, unless ``wait_unattended`` (the user
    asked to wait for a UI); and when the last client goes, a pause resumes.
    ``state_names()`` maps ``id(tensor)`` to what a state tensor is (``profile.state_names``).
    """

    def __init__(self, breakpoints: list[str] | tuple[str, ...] = (),
                 state_names: Callable[[], dict[int, str]] | None = None,
                 step_of: Callable[[], int] | None = None, wait_unattended: bool = False) -> None:
        self.breakpoints: list[Breakpoint] = []
        self._next_id = 1
        for spec in breakpoints:
            self.add_breakpoint(spec)
        self.listeners: list[Callable[[Event], None]] = []
        self._steps_seen = 0
        self._step_of = step_of or (lambda: self._steps_seen)
        self._mode = "continue"
        self._scope: str | None = None
        self._lock = threading.Lock()
        self._pause_lock = threading.Lock()
        self._paused: _Paused | None = None
        self._tasks: queue.Queue[tuple[str, Callable[[], Any] | None, Future | None]] = queue.Queue()
        self._internal = internal_dirs()
        self.anomaly = AnomalyTracker(state_names or dict)
        self.run_dir: str | None = None
        self.rank: int | None = None
        self.world_size: int | None = None
        #: where spawned ranks record and serve (gprof/debug/spawn.py): run_dir and world_size
        self.ranks: dict[str, Any] | None = None
        self.wait_unattended = wait_unattended
        self._attached = 0
        self._stop_requested = False
        self._pause_reason: str | None = None
        self._failure: _Failure | None = None
        self._new_step()

    # ------------------------------------------------------------------ breakpoints
    def add_breakpoint(self, spec: str) -> Breakpoint:
        bp = parse_breakpoint(spec, id=self._next_id)
        self._next_id += 1
        self.breakpoints.append(bp)
        return bp

    def _find(self, bp_id: int) -> Breakpoint:
        for bp in self.breakpoints:
            if bp.id == bp_id:
                return bp
        raise KeyError(f"no breakpoint {bp_id}; breakpoints: {[b.id for b in self.breakpoints] or 'none'}")

    def set_enabled(self, bp_id: int, enabled: bool) -> None:
        self._find(bp_id).enabled = enabled

    def remove_breakpoint(self, bp_id: int) -> None:
        self.breakpoints.remove(self._find(bp_id))

    def edit_breakpoint(self, bp_id: int, spec: str) -> Breakpoint:
        """Replace a breakpoint's spec in place (same id and position); a bad spec changes nothing."""
        old = self._find(bp_id)
        new = parse_breakpoint(spec, id=bp_id)
        new.enabled = old.enabled
        self.breakpoints[self.breakpoints.index(old)] = new
        return new

    # ------------------------------------------------------------------ state
    def _new_step(self) -> None:
        self.anomaly.reset()
        self._brief: dict[int, tuple[str, str, str | None]] = {}
        self._logged: set[int] = set()  # breakpoints whose unattended hit this step is on stderr
        self._prev: Node | None = None
        self._failure = None
        for bp in self.breakpoints:  # a breakpoint present for a whole step can be checked against it
            bp.armed = bp.enabled

    @property
    def paused(self) -> dict[str, Any] | None:
        p = self._paused
        return None if p is None else p.info

    def state(self) -> Event:
        return {"paused": self.paused, "breakpoints": [b.describe() for b in self.breakpoints],
                "step": self._step_of(), "run_dir": self.run_dir, "pid": os.getpid(), "mode": self._mode,
                "rank": self.rank, "world_size": self.world_size, "ranks": self.ranks}

    def _emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)

    # ------------------------------------------------------------------ the observer
    def __call__(self, node: Node, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        if node.idx == 0:
            self._new_step()
        self._brief[node.idx] = (node.key, node.op, node.module)
        prev, self._prev = self._prev, node
        if self._stop_requested:
            self._raise_stop()
        active = [b for b in self.breakpoints if b.enabled]
        if self._mode == "finish" or (self._mode == "continue" and not active):
            return
        ins = iter_tensors(args) + iter_tensors(kwargs)
        outs = iter_tensors(out)
        reason: str | None = None
        if self._mode == "step":
            reason, self._pause_reason = self._pause_reason or "step", None
        elif self._mode == "next" and not _within(node.module, self._scope):
            reason = "stepped over " + (f"module {self._scope!r}" if self._scope else "the node")
        finding = None
        if any(b.condition is not None and b.condition.needs_finiteness for b in active):
            finding = self.anomaly.observe(node, ins, outs)
        first: Breakpoint | None = None
        chain: list[dict[str, Any]] | None = None
        for bp in active:
            if not bp.target.matches(node):
                continue
            bp.matched += 1
            if bp.entry_only and prev is not None and bp.target.matches(prev):
                continue  # still inside the module it broke on entering
            hit, why, entering = self._check(bp, node, ins, outs, finding)
            if not hit:
                continue
            bp.hits += 1
            if bp.ignore > 0:
                bp.ignore -= 1
                continue
            if bp.once:  # pdb's tbreak: gone after the hit that stops
                self.breakpoints.remove(bp)
            if first is None:
                first = bp
                if reason is None:
                    reason = f"breakpoint {bp.id} ({bp.spec})" + (f": {why}" if why else "")
                if bp.condition is not None and bp.condition.needs_finiteness:
                    chain = self.anomaly.chain(node, entering)
        if reason is None:
            return
        if self._holds():
            self._pause(self._node_info(node, ins, outs, reason, chain), ins, outs, user_frames(self._internal))
        elif first is not None:  # a step or next whose client has just gone is no hit
            self._record_unattended(node, first, reason, chain)
        if self._stop_requested:
            self._raise_stop()

    def _check(self, bp: Breakpoint, node: Node, ins: list[torch.Tensor], outs: list[torch.Tensor],
               finding: Finding | None) -> tuple[bool, str, str | None]:
        """(hit, why, what entered from outside) for one breakpoint whose target matched."""
        c = bp.condition
        if c is None:
            return True, "", None
        if c.kind in ("nan", "inf"):
            assert finding is not None
            if finding.new_nan if c.kind == "nan" else finding.new_inf:
                return True, f"new {'NaN' if c.kind == 'nan' else 'Inf'} in the output", None
            entering = finding.entering.get(c.kind)
            return entering is not None, entering or "", entering
        if c.kind == "absmax":
            if uninitialized(node):  # torch.empty's garbage is often > 1e30: no value at all
                return False, "", None
            for t in outs:
                v = absmax(t)
                if v > c.threshold or (c.inclusive and v == c.threshold):
                    return True, f"absmax {v:g} (finite values)", None
            return False, "", None
        try:
            return bool(eval(c.code, {"torch": torch}, self._namespace(node, ins, outs))), "", None
        except Exception as e:  # reported once; a condition that cannot be evaluated is no hit
            if bp.error is None:
                bp.error = f"condition raised {type(e).__name__}: {e} (at {node.op} in {node.module or '-'})"
                self._warn(bp, bp.error, "breakpoint_error")
            return False, "", None

    def _warn(self, bp: Breakpoint, text: str, event: str) -> None:
        print(f"torch-gprof debug: breakpoint {bp.id} ({bp.spec}): {text}", file=sys.stderr, flush=True)
        self._emit({"event": event, "bp": bp.describe()})

    @staticmethod
    def _namespace(node: Node | None, ins: list[torch.Tensor], outs: list[torch.Tensor]) -> dict[str, Any]:
        ns: dict[str, Any] = {"ins": ins, "outs": outs, "out": outs[0] if outs else None, "node": node}
        ns.update({f"in{i}": t for i, t in enumerate(ins)})
        ns.update({f"out{i}": t for i, t in enumerate(outs)})
        return ns

    # ------------------------------------------------------------------ post-mortem
    def on_op_failed(self, func: Any, args: tuple, kwargs: dict, error: Exception, module: str | None) -> None:
        """A recorded op raised (``profile.add_failure_observer``): keep what the post-mortem shows."""
        ins = iter_tensors(args) + iter_tensors(kwargs)
        backward = torch._C._current_graph_task_id() != -1
        prev = self._prev
        phase = "backward" if backward else ("optimizer" if prev is not None and prev.phase == "optimizer" else "forward")
        frames = user_frames(self._internal)
        info = self._info(kind="post_mortem", op=str(func), module=module, phase=phase, frames=frames,
                          reason=f"post-mortem: {func} raised {type(error).__name__}: {error}",
                          inputs=[summarize(t, f"in{i}") for i, t in enumerate(ins)])
        self._failure = _Failure(error, info, ins, frames)

    def _post_mortem(self, graph: Any) -> None:
        """The step ended with an exception: pause at the op that raised it (or, for an exception
        raised outside any op, at the end of the step), with the saved, incomplete step to browse."""
        f, self._failure = self._failure, None
        error = graph.meta.error or "an exception"
        if f is not None and _error_line(f.error) == error:
            info, ins, frames = f.info, f.ins, f.frames
            info["step"] = graph.meta.step
        else:
            info = self._info(kind="post_mortem", reason=f"post-mortem: step {graph.meta.step} ended with {error}")
            ins, frames = [], []
        if not self._holds():
            print(f"torch-gprof debug: {info['reason']} (module {info['module'] or '-'}); the step is saved as "
                  "incomplete", file=sys.stderr, flush=True)
            return
        self._pause(info, ins, [], frames)

    # ------------------------------------------------------------------ attended or not
    def client_attached(self) -> None:
        """A UI connected (called by the server)."""
        with self._lock:
            self._attached += 1

    def client_left(self) -> None:
        """A UI went away (called by the server). When it was the last, nobody can resume a
        pause: stepping ends and the program runs on; breakpoints stay for the next UI."""
        with self._lock:
            self._attached = max(0, self._attached - 1)
            last = self._attached == 0
        if last:
            self._mode = "continue"
            self.wait_unattended = False  # wait=True waits for the first UI, not for one that went
            if self._paused is not None:
                self._tasks.put(("resume", None, None))

    def _holds(self) -> bool:
        """Whether a hit pauses: a UI is attached, or the user asked to wait for one."""
        return self._attached > 0 or self.wait_unattended

    def _record_unattended(self, node: Node, bp: Breakpoint, reason: str, chain: list[dict[str, Any]] | None) -> None:
        """A hit with nobody attached: kept on the node, and said on stderr once per step and
        breakpoint (a breakpoint on a module matches each of its ops)."""
        origin = chain[-1]["origin"] if chain else None
        node.attrs["breakpoint_hit"] = {"reason": reason, "origin": origin}
        if bp.id in self._logged:
            return
        self._logged.add(bp.id)
        print(f"torch-gprof debug: {reason} at step {self._step_of()}, node {node.key}"
              + (f" ({origin})" if origin else "")
              + "; no debugger attached, so the job runs on (attach one to pause, or pass wait=True to wait)",
              file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ pausing
    def _info(self, *, kind: str, reason: str, op: str | None = None, module: str | None = None,
              phase: str | None = None, frames: list[FrameType] | None = None,
              inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A pause as the protocol sends it; ``kind`` is node, post_mortem or step_end."""
        thread = threading.current_thread()
        frames = frames or []
        infos = [frame_info(f) for f in frames]
        return {"kind": kind, "step": self._step_of(), "idx": None, "key": None, "op": op, "module": module,
                "phase": phase, "reason": reason, "source": None, "thread": thread.name,
                "main_thread": thread is threading.main_thread(), "inputs": inputs or [], "outputs": [],
                "fwd": None, "param": None, "chain": None, "frames": infos,
                "stack": [f"{i['file']}:{i['line']} in {i['func']}" for i in reversed(infos)],
                "source_lines": source_context(infos[0]["file"], infos[0]["line"]) if infos else []}

    def _node_info(self, node: Node, ins: list[torch.Tensor], outs: list[torch.Tensor], reason: str,
                   chain: list[dict[str, Any]] | None) -> dict[str, Any]:
        info = self._info(kind="node", reason=reason, op=node.op, module=node.module, phase=node.phase,
                          frames=user_frames(self._internal), inputs=[summarize(t, f"in{i}") for i, t in enumerate(ins)])
        fwd = None
        if node.fwd is not None and node.fwd in self._brief:
            k, op, mod = self._brief[node.fwd]
            fwd = {"idx": node.fwd, "key": k, "op": op, "module": mod}
        info.update(idx=node.idx, key=node.key, source=node.source, fwd=fwd, param=node.param, chain=chain,
                    outputs=[summarize(t, f"out{i}") for i, t in enumerate(outs)])
        return info

    def _pause(self, info: dict[str, Any], ins: list[torch.Tensor], outs: list[torch.Tensor],
               frames: list[FrameType]) -> None:
        with self._pause_lock:  # one pause at a time, whichever thread hits
            self._tasks = queue.Queue()
            self._paused = _Paused(info, ins, outs, frames)
            self._scope = None
            if not self._holds():  # the last client left between the hit and here
                self._tasks.put(("resume", None, None))
            self._emit({"event": "paused", "pause": info})
            try:
                while True:
                    kind, fn, fut = self._tasks.get()
                    if kind == "resume":
                        break
                    assert fn is not None and fut is not None
                    try:
                        fut.set_result(fn())
                    except Exception as e:
                        fut.set_exception(e)
            finally:
                self._paused = None
            self._emit({"event": "running", "mode": "stopping" if self._stop_requested else self._mode})

    def resume(self, mode: str) -> None:
        """continue | step (next node) | next (step over the rest of this module) | finish (end of step)."""
        if mode not in RESUME_MODES:
            raise ValueError(f"unknown resume mode {mode!r}; use one of {', '.join(RESUME_MODES)}")
        p = self._paused
        if p is None:
            raise RuntimeError("the program is running, not paused; wait for a breakpoint (or press p to pause)")
        self._mode = "continue" if p.info.get("kind") == "post_mortem" else mode  # the exception goes on
        self._scope = p.info.get("module") if mode == "next" and p.info.get("idx") is not None else None
        if self._mode == "next" and self._scope is None:
            self._mode = "step"
        if self._mode == "finish":  # breakpoints sleep until the step ends: no step to judge them by
            for bp in self.breakpoints:
                bp.armed = False
        self._tasks.put(("resume", None, None))

    def pause_now(self) -> None:
        """Pause at the next recorded op, wherever it is."""
        if self._paused is not None:
            raise RuntimeError("already paused")
        self._pause_reason = "paused at your request"
        self._mode = "step"

    def stop(self) -> None:
        """Raise KeyboardInterrupt in the training thread at its next recorded op (now, if
        paused): the script's own handlers and ``finally`` blocks run, the step is saved as
        incomplete, and the program ends as after Ctrl+C."""
        self._stop_requested = True
        self._mode = "continue"
        if self._paused is not None:
            self._tasks.put(("resume", None, None))

    def _raise_stop(self) -> None:
        self._stop_requested = False
        raise KeyboardInterrupt(STOP_MESSAGE)

    def detach(self) -> None:
        """Drop all breakpoints and let the program run to its end (the UI went away)."""
        for bp in self.breakpoints:
            bp.enabled = False
        self._mode = "continue"
        self.wait_unattended = False  # the user left: nothing may wait for a UI any more
        if self._paused is not None:
            self._tasks.put(("resume", None, None))

    # ------------------------------------------------------------------ at a pause
    def run_on_paused_thread(self, fn: Callable[[_Paused], Any], timeout: float = 60.0) -> Any:
        p = self._paused
        if p is None:
            raise RuntimeError("not paused: evaluate and save work at a pause")
        fut: Future = Future()
        self._tasks.put(("task", lambda: fn(p), fut))
        return fut.result(timeout)

    def frame(self, index: int) -> dict[str, Any]:
        """Frame ``index`` of the pause (0: innermost user frame) with its source around the line."""
        p = self._paused
        if p is None:
            raise RuntimeError("not paused")
        if not 0 <= index < len(p.frames):
            raise IndexError(f"no frame {index}: the pause has {len(p.frames)} user frames")
        info = frame_info(p.frames[index])
        return {"index": index, **info, "source_lines": source_context(info["file"], info["line"])}

    def _value(self, p: _Paused, code: Any, frame: int) -> Any:
        f = p.frames[frame] if 0 <= frame < len(p.frames) else None
        g, local = frame_namespace(f, self._namespace(None, p.ins, p.outs))
        return eval(code, g, local)

    def evaluate(self, expr: str, frame: int = 0) -> dict[str, Any]:
        """Evaluate a Python expression in user frame ``frame`` (its locals, ``self``...), with the
        paused op's tensors on top (``out``, ``ins``, ``in0``...)."""
        code = compile(expr, "<eval>", "eval")

        def run(p: _Paused) -> dict[str, Any]:
            value = self._value(p, code, frame)
            res: dict[str, Any] = {"repr": repr(value)[:_MAX_REPR]}
            if isinstance(value, torch.Tensor):
                res["tensor"] = summarize(value, expr)
            return res

        return self.run_on_paused_thread(run)

    def save_tensor(self, name: str, path: str, frame: int = 0) -> str:
        """Save a copy of the named tensor (``out0``, ``in1`` or an expression) with torch.save."""
        code = compile(name, "<save>", "eval")

        def run(p: _Paused) -> str:
            value = self._value(p, code, frame)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name!r} is a {type(value).__name__}, not a tensor")
            target = os.path.abspath(os.path.expanduser(path))
            torch.save(value.detach().clone(), target)
            return target

        return self.run_on_paused_thread(run)

    # ------------------------------------------------------------------ steps
    def on_step_saved(self, graph: Any, path: Any) -> None:
        """Session callback after each saved step: flags breakpoints that matched nothing, then
        the post-mortem (an incomplete step) or the 'finish' pause."""
        self._steps_seen += 1
        self._emit({"event": "step_saved", "step": graph.meta.step, "path": None if path is None else str(path),
                    "run_dir": self.run_dir, "complete": graph.meta.complete})
        modules = sorted(m for m in graph.modules if m)
        for bp in self.breakpoints:
            if bp.enabled and bp.armed and bp.matched == 0 and bp.warning is None:
                bp.warning = unmatched_reason(bp, modules, graph.meta.step)
                self._warn(bp, bp.warning, "breakpoint_warning")
        if not graph.meta.complete and not (graph.meta.error or "").startswith(_NOT_FAILURES):
            self._post_mortem(graph)
        elif self._mode == "finish" and self._holds():
            self._mode = "continue"
            frames = user_frames(self._internal)
            info = self._info(kind="step_end", frames=frames,
                              reason=f"end of step {graph.meta.step} ({graph.meta.node_count} nodes)")
            info["step"] = graph.meta.step
            self._pause(info, [], [], frames)
