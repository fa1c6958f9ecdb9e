"""DeviceTimer's shared logic on the CPU-side backend, and the Kineto kernel-time parser.

There is no GPU here: the CUDA backend differs only in how an event is recorded and read, so the
pooling, slot bookkeeping and resolution are exercised with host-clock events inside a real
dispatch mode over a real training step. The CUDA test runs where CUDA exists.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import torch

from gprof.capture.device_timing import (
    CudaEvents,
    DeviceTimedMode,
    DeviceTimer,
    HostEvents,
    device_times_by_op,
    kineto_kernel_times,
    kineto_op_name,
)


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    loss = model(torch.randn(4, 8)).square().mean()
    loss.backward()
    opt.step()
    opt.zero_grad()


def _model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    return model, torch.optim.Adam(model.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path, and CUDA is available here")
def test_cpu_machine_gets_no_timer() -> None:
    assert DeviceTimer.for_current_machine() is None


def test_every_node_resolved_once_per_step_and_pool_reused() -> None:
    model, opt = _model()
    timer = DeviceTimer(HostEvents(), initial_pool=8)  # far fewer pairs than a step: the pool must grow
    per_step = []
    for _ in range(2):
        with DeviceTimedMode(timer) as mode:
            _train_step(model, opt)
        assert timer.pending == len(mode.ops)
        times = timer.resolve()
        assert timer.pending == 0
        assert sorted(times) == list(range(len(mode.ops)))
        assert all(ns >= 0 for ns in times.values())
        assert sum(times.values()) > 0
        per_step.append((len(mode.ops), timer.pool_size))
    # a steady-state step needs no new events: the pool grew once, to the size of the step
    (_, pool_first), (ops_second, pool_second) = per_step
    assert pool_second == pool_first >= ops_second


class TickEvents(HostEvents):
    """A clock that advances one tick per recorded event: elapsed times show which events paired."""

    def __init__(self) -> None:
        self.tick = 0

    def record(self, event: Any) -> None:
        self.tick += 1
        event.ns = self.tick


def test_each_node_gets_its_own_start_and_stop() -> None:
    timer = DeviceTimer(TickEvents())
    a = torch.randn(16, 16)
    with DeviceTimedMode(timer) as mode:
        torch.mm(a, a)
        torch.add(a[:1, :1], 1)
    times = timer.resolve()
    assert mode.ops == ["aten.mm.default", "aten.slice.Tensor", "aten.slice.Tensor", "aten.add.Tensor"]
    # start and stop are adjacent events of the same op: no pair spans another op or a gap
    assert times == {0: 1, 1: 1, 2: 1, 3: 1}


def test_unassigned_pairs_are_not_reported_and_discard_forgets() -> None:
    timer = DeviceTimer(HostEvents())
    s0 = timer.start()
    timer.stop(s0)  # an op that did not become a node (marker, aggregate-only)
    s1 = timer.start()
    timer.stop(s1)
    timer.assign(s1, 0)
    assert list(timer.resolve()) == [0]
    s = timer.start()
    timer.stop(s)
    timer.assign(s, 0)
    timer.discard()
    assert timer.resolve() == {}
    assert timer.start() == 0  # slots restart after discard: the pool is reused from the front


def test_pairs_of_one_node_add_up() -> None:
    """The recorder folds a compiled backward's extern calls into one node: their times sum."""
    timer = DeviceTimer(TickEvents())
    for _ in range(3):
        slot = timer.start()
        timer.stop(slot)
        timer.assign(slot, 5)
    assert timer.resolve() == {5: 3}


def test_threads_get_distinct_slots() -> None:
    timer = DeviceTimer(HostEvents(), initial_pool=2)
    n_threads, per_thread = 4, 500

    def work(base: int) -> None:
        for i in range(per_thread):
            slot = timer.start()
            timer.stop(slot)
            timer.assign(slot, base + i)

    threads = [threading.Thread(target=work, args=(k * per_thread,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = timer.resolve()
    assert sorted(times) == list(range(n_threads * per_thread))
    assert all(ns >= 0 for ns in times.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none on this machine")
def test_cuda_events_time_kernels() -> None:
    timer = DeviceTimer(CudaEvents())
    a = torch.randn(2048, 2048, device="cuda")
    with DeviceTimedMode(timer) as mode:
        torch.mm(a, a)
    times = timer.resolve()
    assert mode.ops == ["aten.mm.default"] and times[0] > 0


# ------------------------------------------------------------------------------------ Kineto
def test_real_cpu_trace_has_no_device_time(tmp_path: Any) -> None:
    path = tmp_path / "w.1.pt.trace.json"
    a = torch.randn(64, 64)
    with torch.profiler.profile(record_shapes=True) as prof:
        torch.mm(a, a).relu()
    prof.export_chrome_trace(str(path))
    events = json.loads(path.read_text())["traceEvents"]
    assert any(e.get("cat") == "cpu_op" and e.get("name") == "aten::mm" for e in events)
    assert kineto_kernel_times(path) == {}


def _trace(tmp_path: Any) -> Any:
    """The shape of a CUDA Kineto trace: nested CPU ops, launches with correlation ids, kernels."""
    def x(cat: str, name: str, ts: float, dur: float, tid: int = 1, **args: Any) -> dict[str, Any]:
        return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur, "args": args}

    events = [
        x("cpu_op", "aten::linear", 0, 100),
        x("cpu_op", "aten::t", 1, 2),
        x("cpu_op", "aten::addmm", 10, 80),
        x("cuda_runtime", "cudaLaunchKernel", 20, 5, correlation=7),
        x("cpu_op", "aten::relu", 120, 30),
        x("cuda_runtime", "cudaLaunchKernel", 130, 5, correlation=8),
        x("cpu_op", "aten::mul", 40, 10, tid=2),  # another thread: never an owner of tid 1's launches
        x("cuda_runtime", "cudaMemcpyAsync", 200, 5, correlation=9),  # outside any op
        x("kernel", "sm90_gemm", 30, 50.5, tid=7, correlation=7),
        x("kernel", "vectorized_relu", 140, 4, tid=7, correlation=8),
        x("gpu_memcpy", "Memcpy HtoD", 210, 3, tid=8, correlation=9),
        {"ph": "f", "cat": "ac2g", "name": "ac2g", "pid": 1, "tid": 1, "ts": 20, "id": 7},
    ]
    path = tmp_path / "gpu.pt.trace.json"
    path.write_text(json.dumps({"traceEvents": events}))
    return path


def test_kernels_are_charged_to_the_launching_op(tmp_path: Any) -> None:
    path = _trace(tmp_path)
    assert kineto_kernel_times(path) == {"aten::addmm": 50500, "aten::relu": 4000, "<no op>": 3000}
    # only ops the recorder saw: the innermost recorded op is charged
    assert kineto_kernel_times(path, op_names={"aten::linear", "aten::relu"}) == {
        "aten::linear": 50500, "aten::relu": 4000, "<no op>": 3000}


def test_unreadable_trace_says_what_to_pass(tmp_path: Any) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="export_chrome_trace"):
        kineto_kernel_times(bad)


def test_per_op_sums_use_kineto_names() -> None:
    assert kineto_op_name("aten.addmm.default") == "aten::addmm"
    assert device_times_by_op([("aten.addmm.default", 5), ("aten.addmm.out", 7), ("aten.t.default", None)]) == {
        "aten::addmm": 12}
