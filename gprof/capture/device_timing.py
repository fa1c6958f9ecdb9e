"""Device time per node: CUDA event pairs around each op, resolved after the step.

On a GPU the host time of an op (what ``perf_counter_ns`` around the call measures) is only the
launch; the kernel runs later. So on CUDA every recorded op gets a pair of events recorded on the
current stream around the call. The hot path only takes two events from a pool and records them
(``cudaEventRecord``, asynchronous); nothing waits for the GPU until :meth:`DeviceTimer.resolve`,
which synchronizes once per step (or per chunk of a very long step) and reads every elapsed time.

The pooling, slot bookkeeping and resolution are the same for every backend; only "record a
timestamp" and "elapsed between two timestamps" differ. :class:`HostEvents` is the CPU-side
backend the tests run that shared logic with (there is no GPU there); on CPU the profiler itself
uses no timer at all (:meth:`DeviceTimer.for_current_machine` returns ``None``), so the CPU path
pays nothing.

:func:`kineto_kernel_times` sums the kernel durations of a Kineto trace per op, which is how the
CUDA-event times are checked (``benchmarks/gpu_check.py``: within 5% per op type).
"""
from __future__ import annotations

import bisect
import gzip
import itertools
import json
import os
import threading
from collections import defaultdict
from collections.abc import Iterable
from time import perf_counter_ns
from typing import Any, Protocol

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class EventBackend(Protocol):
    """How a timer makes, records and reads events."""

    def new_event(self) -> Any: ...

    def record(self, event: Any) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_ns(self, start: Any, end: Any) -> int: ...


class CudaEvents:
    """``torch.cuda.Event(enable_timing=True)`` pairs on the current stream."""

    def __init__(self) -> None:
        self._current_stream = torch.cuda.current_stream

    def new_event(self) -> Any:
        return torch.cuda.Event(enable_timing=True)

    def record(self, event: Any) -> None:
        event.record(self._current_stream())

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def elapsed_ns(self, start: Any, end: Any) -> int:
        return round(start.elapsed_time(end) * 1e6)  # elapsed_time is in milliseconds


class _HostEvent:
    __slots__ = ("ns",)

    def __init__(self) -> None:
        self.ns = 0


class HostEvents:
    """Host clock stamps with the CUDA event interface: the CPU fallback the shared logic runs on."""

    def new_event(self) -> _HostEvent:
        return _HostEvent()

    def record(self, event: _HostEvent) -> None:
        event.ns = perf_counter_ns()

    def synchronize(self) -> None:
        pass

    def elapsed_ns(self, start: _HostEvent, end: _HostEvent) -> int:
        return end.ns - start.ns


class DeviceTimer:
    """Event pairs around ops, resolved to ``{node index: device ns}`` after the step.

    Hot path, per op: ``slot = timer.start()`` before the call, ``timer.stop(slot)`` after it, and
    ``timer.assign(slot, node_idx)`` once the op is known to become a node (skipped markers and
    aggregate-only ops are simply never assigned). Events are pooled and reused step after step,
    so a steady-state step allocates no events. Thread-safe for the autograd device threads:
    slots come from an atomic counter, and the pool only grows under a lock.
    """

    def __init__(self, backend: EventBackend | None = None, initial_pool: int = 1024) -> None:
        self.backend: EventBackend = backend if backend is not None else HostEvents()
        self._pool: list[Any] = [self.backend.new_event() for _ in range(2 * initial_pool)]
        self._grow_lock = threading.Lock()
        self._slots = itertools.count()
        self._used = 0
        #: slot -> node index, for the slots whose op became a node
        self._nodes: dict[int, int] = {}
        self._record = self.backend.record

    @classmethod
    def for_current_machine(cls) -> DeviceTimer | None:
        """A CUDA-event timer when CUDA is usable, else ``None`` (the CPU path uses no timer)."""
        if os.environ.get("GPROF_NO_DEVICE_TIMING") or not torch.cuda.is_available():
            return None
        return cls(CudaEvents())

    @property
    def pool_size(self) -> int:
        """Event pairs the pool holds (it only grows, to the largest step seen)."""
        return len(self._pool) // 2

    def _grow(self, needed: int) -> None:
        with self._grow_lock:
            while len(self._pool) < needed:
                self._pool.extend(self.backend.new_event() for _ in range(max(len(self._pool), 2)))

    def start(self) -> int:
        slot = next(self._slots)
        i = 2 * slot
        if i + 1 >= len(self._pool):
            self._grow(i + 2)
        self._record(self._pool[i])
        return slot

    def stop(self, slot: int) -> None:
        self._record(self._pool[2 * slot + 1])

    def assign(self, slot: int, node: int) -> None:
        self._nodes[slot] = node

    @property
    def pending(self) -> int:
        """Assigned pairs not yet resolved."""
        return len(self._nodes)

    def resolve(self) -> dict[int, int]:
        """Wait for the device once, read every assigned pair, and free the pool for reuse.
        Pairs assigned to the same node add up.

        Call it with no op in flight (after the step, or between chunks)."""
        nodes, self._nodes = self._nodes, {}
        self._slots = itertools.count()
        if not nodes:
            return {}
        self.backend.synchronize()
        pool, elapsed = self._pool, self.backend.elapsed_ns
        out: dict[int, int] = {}
        for slot, node in nodes.items():  # several pairs may make one node (a merged compiled backward)
            out[node] = out.get(node, 0) + elapsed(pool[2 * slot], pool[2 * slot + 1])
        return out

    def discard(self) -> None:
        """Forget this step's pairs (a step that is not saved)."""
        self._nodes = {}
        self._slots = itertools.count()


class DeviceTimedMode(TorchDispatchMode):
    """Times every op of a region with a :class:`DeviceTimer`, exactly as the recorder uses it
    (start, call, stop, assign when the op is a node), and nothing else: for checking the timer
    against Kineto where the recorder is not involved. ``ops[i]`` is the op of node ``i``."""

    def __init__(self, timer: DeviceTimer) -> None:
        super().__init__()
        self.timer = timer
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        timer = self.timer
        slot = timer.start()
        out = func(*args, **(kwargs or {}))
        timer.stop(slot)
        if func.namespace != "profiler":  # record_function markers never become nodes
            timer.assign(slot, len(self.ops))
            self.ops.append(str(func))
        return out


# ------------------------------------------------------------------------------------ Kineto
#: trace categories whose events are device work launched by an op
DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")


def kineto_op_name(gprof_op: str) -> str:
    """``aten.addmm.default`` -> ``aten::addmm``: the name Kineto gives the same op."""
    parts = gprof_op.split(".")
    return f"{parts[0]}::{parts[1]}" if len(parts) >= 2 else gprof_op


def _load_trace(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable Kineto/Chrome trace ({e}); pass the .pt.trace.json "
                         "file torch.profiler's export_chrome_trace wrote") from None
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ValueError(f"{path}: no traceEvents list; is this a Chrome trace?")
    return events


def _enclosing_ops(cpu_ops: list[dict[str, Any]], launches: list[dict[str, Any]]) -> dict[int, list[str]]:
    """For each launch (by correlation id), the names of the CPU ops around it, innermost first.
    A sweep over one thread's ops sorted by start, keeping the stack of open ops."""
    out: dict[int, list[str]] = {}
    ops = sorted(cpu_ops, key=lambda e: (e["ts"], -e.get("dur", 0)))
    starts = [e["ts"] for e in ops]
    stack: list[dict[str, Any]] = []
    i = 0
    for ev in sorted(launches, key=lambda e: e["ts"]):
        ts = ev["ts"]
        j = bisect.bisect_right(starts, ts)
        for op in ops[i:j]:
            while stack and stack[-1]["ts"] + stack[-1].get("dur", 0) < op["ts"]:
                stack.pop()
            stack.append(op)
        i = max(i, j)
        while stack and stack[-1]["ts"] + stack[-1].get("dur", 0) < ts:
            stack.pop()
        out[ev["args"]["correlation"]] = [
            o["name"] for o in reversed(stack) if o["ts"] <= ts <= o["ts"] + o.get("dur", 0)]
    return out


def kineto_kernel_times(trace_path: str | os.PathLike[str], op_names: Iterable[str] | None = None
                        ) -> dict[str, int]:
    """Device ns per op in a Kineto trace: each kernel (memcpy, memset) is charged to the CPU op
    that launched it, found through the launch's correlation id.

    ``op_names`` (Kineto spelling, see :func:`kineto_op_name`) picks, among the nested ops around a
    launch, the innermost one in the set: Kineto shows ops inside ops (``aten::linear`` around
    ``aten::addmm``) while the recorder sees one level, so this charges kernels to the ops the
    recorder saw. Without it, the innermost op is charged. Kernels with no op around them are
    under ``"<no op>"``.
    """
    events = _load_trace(trace_path)
    wanted = set(op_names) if op_names is not None else None
    cpu_ops: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    launches: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    device: list[dict[str, Any]] = []
    for ev in events:
        if ev.get("ph") != "X":
            continue
        cat = ev.get("cat")
        if cat == "cpu_op":
            cpu_ops[(ev.get("pid"), ev.get("tid"))].append(ev)
        elif cat in ("cuda_runtime", "cuda_driver") and "correlation" in ev.get("args", {}):
            launches[(ev.get("pid"), ev.get("tid"))].append(ev)
        elif cat in DEVICE_CATEGORIES:
            device.append(ev)
    owner: dict[int, list[str]] = {}
    for thread, evs in launches.items():
        owner.update(_enclosing_ops(cpu_ops.get(thread, []), evs))
    totals: dict[str, int] = defaultdict(int)
    for ev in device:
        names = owner.get(ev.get("args", {}).get("correlation"), [])
        if wanted is not None:
            names = [n for n in names if n in wanted]
        totals[names[0] if names else "<no op>"] += round(ev.get("dur", 0) * 1000)  # trace times are in us
    return dict(totals)


def device_times_by_op(ops_and_times: Iterable[tuple[str, int | None]]) -> dict[str, int]:
    """Sum per-node device ns by op, in Kineto's spelling, for comparison with :func:`kineto_kernel_times`."""
    totals: dict[str, int] = defaultdict(int)
    for op, ns in ops_and_times:
        if ns is not None:
            totals[kineto_op_name(op)] += ns
    return dict(totals)
