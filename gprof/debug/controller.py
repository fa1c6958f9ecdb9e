"""The debugger proper: a recorder observer that decides where to pause, and the pause itself.

A pause is a blocking wait *on the thread that ran the op* (autograd may run backward on a device
thread, where no UI can live). The UI talks to this object from the server thread; work that
touches the paused op's tensors (evaluate, save) is queued to the paused thread and run there,
still inside ``__torch_dispatch__``, so it is never recorded. Nothing here writes a tensor.
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
from typing import Any

import torch

from gprof.debug.spec import Breakpoint, parse_breakpoint
from gprof.debug.tensors import absmax, iter_tensors, nonfinite_kinds, summarize
from gprof.graph.model import Node

Event = dict[str, Any]
RESUME_MODES = ("continue", "step", "next", "finish")
_MAX_STACK = 12
_MAX_REPR = 4000
#: ops whose output is uninitialized memory by contract; garbage NaNs there are no anomaly
_UNINITIALIZED = frozenset({"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty",
                            "new_empty_strided", "resize_"})


def _internal_dirs() -> tuple[str, ...]:
    import gprof

    return (os.path.dirname(torch.__file__), os.path.dirname(gprof.__file__), os.path.dirname(threading.__file__))


@dataclass
class _NodeFacts:
    """What the anomaly walk needs about an earlier node whose output was non-finite."""

    idx: int
    key: str
    op: str
    module: str | None
    phase: str
    kinds: str
    source: str | None
    #: (input position, storage id, kinds, leaf description) of each non-finite input
    bad_inputs: list[tuple[int, int, str, str]] = field(default_factory=list)


@dataclass
class _Paused:
    info: dict[str, Any]
    ins: list[torch.Tensor]
    outs: list[torch.Tensor]


def _kinds(nan: bool, inf: bool) -> str:
    return "+".join(k for k, v in (("NaN", nan), ("Inf", inf)) if v)


def _within(module: str | None, scope: str | None) -> bool:
    if scope is None or module is None:
        return module == scope
    return scope == "" or module == scope or module.startswith(scope + ".")


class Debugger:
    """An observer for ``prof.add_observer``; pauses on breakpoints and stepping commands.

    Training must never hang because of the debugger when nobody is there to resume it: with no
    client attached, a breakpoint hit is logged to stderr and recorded on the node
    (``node.attrs["breakpoint_hit"]``) instead of pausing, unless ``wait_unattended`` (the user
    asked to wait for a UI); and when the last client goes, a pause resumes.
    """

    def __init__(self, breakpoints: list[str] | tuple[str, ...] = (), param_names: Callable[[], dict[int, str]] | None = None,
                 step_of: Callable[[], int] | None = None, wait_unattended: bool = False) -> None:
        self.breakpoints: list[Breakpoint] = []
        self._next_id = 1
        for spec in breakpoints:
            self.add_breakpoint(spec)
        self.listeners: list[Callable[[Event], None]] = []
        self._param_names = param_names or dict
        self._steps_seen = 0
        self._step_of = step_of or (lambda: self._steps_seen)
        self._mode = "continue"
        self._scope: str | None = None
        self._lock = threading.Lock()
        self._pause_lock = threading.Lock()
        self._paused: _Paused | None = None
        self._tasks: queue.Queue[tuple[str, Callable[[], Any] | None, Future | None]] = queue.Queue()
        self._internal = _internal_dirs()
        self._reset_step_state()
        self.run_dir: str | None = None
        self.wait_unattended = wait_unattended
        self._attached = 0

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

    # ------------------------------------------------------------------ state
    def _reset_step_state(self) -> None:
        self._writer_of: dict[int, int] = {}
        self._bad: dict[int, _NodeFacts] = {}
        self._brief: dict[int, tuple[str, str, str | None]] = {}
        self._logged: set[int] = set()  # breakpoints whose unattended hit this step is on stderr

    @property
    def paused(self) -> dict[str, Any] | None:
        p = self._paused
        return None if p is None else p.info

    def state(self) -> Event:
        return {"paused": self.paused, "breakpoints": [b.describe() for b in self.breakpoints],
                "step": self._step_of(), "run_dir": self.run_dir, "pid": os.getpid(), "mode": self._mode}

    def _emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)

    # ------------------------------------------------------------------ the observer
    def __call__(self, node: Node, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        if node.idx == 0:
            self._reset_step_state()
        self._brief[node.idx] = (node.key, node.op, node.module)
        active = [b for b in self.breakpoints if b.enabled]
        if self._mode == "finish" or (self._mode == "continue" and not active):
            return
        ins = iter_tensors(args) + iter_tensors(kwargs)
        outs = iter_tensors(out)
        reason: str | None = None
        first: Breakpoint | None = None
        chain: list[dict[str, Any]] | None = None
        if self._mode == "step":
            reason = "step"
        elif self._mode == "next" and not _within(node.module, self._scope):
            reason = "stepped over " + (f"module {self._scope!r}" if self._scope else "the node")
        need_fin = any(b.condition is not None and b.condition.needs_finiteness for b in active)
        in_k = out_k = None
        if need_fin:
            in_k = [nonfinite_kinds(t) for t in ins]
            out_k = [(False, False) if node.op_short in _UNINITIALIZED else nonfinite_kinds(t) for t in outs]
            self._track(node, ins, in_k, out_k)
        for bp in active:
            if not bp.target.matches(node):
                continue
            hit, why = self._check(bp, node, ins, outs, in_k, out_k)
            if hit:
                bp.hits += 1
                if reason is None:
                    first = bp
                    reason = f"breakpoint {bp.id} ({bp.spec})" + (f": {why}" if why else "")
                    if bp.condition is not None and bp.condition.needs_finiteness:
                        chain = self.anomaly_chain(node.idx)
        if reason is None:
            return
        if self._holds():
            self._pause(self._pause_info(node, ins, outs, reason, chain), ins, outs)
        elif first is not None:  # a step or next whose client has just gone is no hit
            self._record_unattended(node, first, reason, chain)

    def _check(self, bp: Breakpoint, node: Node, ins: list[torch.Tensor], outs: list[torch.Tensor],
               in_k: list[tuple[bool, bool]] | None, out_k: list[tuple[bool, bool]] | None) -> tuple[bool, str]:
        c = bp.condition
        if c is None:
            return True, ""
        if c.kind in ("nan", "inf"):
            assert in_k is not None and out_k is not None
            pos = 0 if c.kind == "nan" else 1
            if any(k[pos] for k in out_k) and not any(k[pos] for k in in_k):
                return True, f"new {'NaN' if pos == 0 else 'Inf'} in the output"
            return False, ""
        if c.kind == "absmax":
            for t in outs:
                v = absmax(t)
                if v > c.threshold or (c.inclusive and v == c.threshold):
                    return True, f"absmax {v:g}"
            return False, ""
        try:
            return bool(eval(c.code, {"torch": torch}, self._namespace(node, ins, outs))), ""
        except Exception as e:  # as pdb does: a failing condition pauses, so the user sees why
            return True, f"condition raised {type(e).__name__}: {e}"

    @staticmethod
    def _namespace(node: Node | None, ins: list[torch.Tensor], outs: list[torch.Tensor]) -> dict[str, Any]:
        ns: dict[str, Any] = {"ins": ins, "outs": outs, "out": outs[0] if outs else None, "node": node}
        ns.update({f"in{i}": t for i, t in enumerate(ins)})
        ns.update({f"out{i}": t for i, t in enumerate(outs)})
        return ns

    # ------------------------------------------------------------------ anomaly provenance
    def _track(self, node: Node, ins: list[torch.Tensor], in_k: list[tuple[bool, bool]],
               out_k: list[tuple[bool, bool]]) -> None:
        in_storages = {m.storage for m in node.inputs}
        if any(n or i for n, i in out_k):
            params = self._param_names()
            bad = []
            for pos, (t, meta, k) in enumerate(zip(ins, node.inputs, in_k)):
                if k[0] or k[1]:
                    name = params.get(id(t))
                    leaf = f"parameter {name!r}" if name else f"tensor {meta.short()} from outside the step"
                    bad.append((pos, meta.storage, _kinds(*k), leaf))
            bad.sort(key=lambda b: not b[3].startswith("parameter"))  # a parameter is the likelier culprit
            self._bad[node.idx] = _NodeFacts(node.idx, node.key, node.op, node.module, node.phase,
                                             _kinds(any(k[0] for k in out_k), any(k[1] for k in out_k)),
                                             node.source, bad)
        inplace = node.op_short.endswith("_")
        for meta in node.outputs:
            if inplace or meta.storage not in in_storages:  # a view keeps the earlier writer
                self._writer_of[meta.storage] = node.idx

    def anomaly_chain(self, idx: int) -> list[dict[str, Any]]:
        """From a node with non-finite output back to where the non-finite values entered: a
        parameter or outside tensor holding them, or an op that made them from finite inputs."""
        chain: list[dict[str, Any]] = []
        seen: set[int] = set()
        cur: int | None = idx
        while cur is not None and cur not in seen:
            seen.add(cur)
            facts = self._bad.get(cur)
            if facts is None:
                break
            entry = {"idx": facts.idx, "key": facts.key, "op": facts.op, "module": facts.module,
                     "phase": facts.phase, "makes": facts.kinds, "source": facts.source, "from": None, "origin": None}
            chain.append(entry)
            if not facts.bad_inputs:
                entry["origin"] = f"{facts.op} turned finite inputs into {facts.kinds}"
                break
            _, storage, kinds, leaf = facts.bad_inputs[0]
            writer = self._writer_of.get(storage)
            if writer is None or writer >= facts.idx or writer not in self._bad:
                entry["from"] = f"{leaf} holding {kinds}"
                entry["origin"] = f"{leaf} holds {kinds}"
                break
            entry["from"] = f"node {writer} ({kinds})"
            cur = writer
        return chain

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
    def _user_stack(self) -> list[str]:
        frames = [f for f in traceback.extract_stack()[:-3] if not f.filename.startswith(self._internal)
                  and not f.filename.startswith("<")]
        return [f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-_MAX_STACK:]]

    def _pause_info(self, node: Node, ins: list[torch.Tensor], outs: list[torch.Tensor], reason: str,
                    chain: list[dict[str, Any]] | None) -> dict[str, Any]:
        thread = threading.current_thread()
        fwd = None
        if node.fwd is not None and node.fwd in self._brief:
            k, op, mod = self._brief[node.fwd]
            fwd = {"idx": node.fwd, "key": k, "op": op, "module": mod}
        return {
            "step": self._step_of(), "idx": node.idx, "key": node.key, "op": node.op, "module": node.module,
            "phase": node.phase, "reason": reason, "source": node.source, "stack": self._user_stack(),
            "thread": thread.name, "main_thread": thread is threading.main_thread(),
            "inputs": [summarize(t, f"in{i}") for i, t in enumerate(ins)],
            "outputs": [summarize(t, f"out{i}") for i, t in enumerate(outs)],
            "fwd": fwd, "param": node.param, "chain": chain,
        }

    def _pause(self, info: dict[str, Any], ins: list[torch.Tensor], outs: list[torch.Tensor]) -> None:
        with self._pause_lock:  # one pause at a time, whichever thread hits
            self._tasks = queue.Queue()
            self._paused = _Paused(info, ins, outs)
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
            self._emit({"event": "running", "mode": self._mode})

    def resume(self, mode: str) -> None:
        """continue | step (next node) | next (step over the rest of this module) | finish (end of step)."""
        if mode not in RESUME_MODES:
            raise ValueError(f"unknown resume mode {mode!r}; use one of {', '.join(RESUME_MODES)}")
        p = self._paused
        if p is None:
            raise RuntimeError("the program is running, not paused; wait for a breakpoint")
        self._mode = mode
        self._scope = p.info.get("module") if mode == "next" and p.info.get("idx") is not None else None
        if mode == "next" and self._scope is None:
            self._mode = "step"
        self._tasks.put(("resume", None, None))

    def detach(self) -> None:
        """Drop all breakpoints and let the program run to its end (the UI went away)."""
        for bp in self.breakpoints:
            bp.enabled = False
        self._mode = "continue"
        if self._paused is not None:
            self._tasks.put(("resume", None, None))

    def run_on_paused_thread(self, fn: Callable[[_Paused], Any], timeout: float = 60.0) -> Any:
        p = self._paused
        if p is None:
            raise RuntimeError("not paused: evaluate and save work at a pause")
        fut: Future = Future()
        self._tasks.put(("task", lambda: fn(p), fut))
        return fut.result(timeout)

    def evaluate(self, expr: str) -> dict[str, Any]:
        """Evaluate a Python expression over the paused op's tensors (``out``, ``ins``, ``in0``...)."""
        code = compile(expr, "<eval>", "eval")

        def run(p: _Paused) -> dict[str, Any]:
            value = eval(code, {"torch": torch}, self._namespace(None, p.ins, p.outs))
            res: dict[str, Any] = {"repr": repr(value)[:_MAX_REPR]}
            if isinstance(value, torch.Tensor):
                res["tensor"] = summarize(value, expr)
            return res

        return self.run_on_paused_thread(run)

    def save_tensor(self, name: str, path: str) -> str:
        """Save a copy of the named tensor (``out0``, ``in1`` or an expression) with torch.save."""
        code = compile(name, "<save>", "eval")

        def run(p: _Paused) -> str:
            value = eval(code, {"torch": torch}, self._namespace(None, p.ins, p.outs))
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name!r} is a {type(value).__name__}, not a tensor")
            target = os.path.abspath(os.path.expanduser(path))
            torch.save(value.detach().clone(), target)
            return target

        return self.run_on_paused_thread(run)

    # ------------------------------------------------------------------ steps
    def on_step_saved(self, graph: Any, path: Any) -> None:
        """Session callback after each saved step; 'finish' pauses here."""
        self._steps_seen += 1
        self._emit({"event": "step_saved", "step": graph.meta.step, "path": None if path is None else str(path),
                    "run_dir": self.run_dir})
        if self._mode == "finish" and self._holds():
            self._mode = "continue"
            info = {"step": graph.meta.step, "idx": None, "key": None, "op": None, "module": None, "phase": None,
                    "reason": f"end of step {graph.meta.step} ({graph.meta.node_count} nodes)",
                    "source": None, "stack": self._user_stack(), "thread": threading.current_thread().name,
                    "main_thread": threading.current_thread() is threading.main_thread(),
                    "inputs": [], "outputs": [], "fwd": None, "param": None, "chain": None}
            self._pause(info, [], [])
