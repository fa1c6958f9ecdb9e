"""The CUDA device-time path, run on CPU through the host-clock backend it shares with CUDA events:
the recorder takes a pair per op, the session resolves them once per step, and the builder keeps a
device time only for ops that touched a CUDA tensor."""
from __future__ import annotations

import torch

import gprof
from gprof.capture.builder import StepBuilder
from gprof.capture.device_timing import DeviceTimer, HostEvents
from gprof.graph.model import StepMeta, TensorMeta


def test_pairs_are_taken_and_resolved_every_step(tmp_path):
    model = torch.nn.Linear(8, 4)
    prof = gprof.profile(logdir=tmp_path, run="dev", analyze=False)
    timer = DeviceTimer(HostEvents(), initial_pool=4)  # grows as the step needs
    prof.session.device_timer = prof.session.recorder.device_timer = timer
    with prof:
        for _ in range(2):
            model(torch.randn(3, 8)).sum().backward()
            assert timer.pending > 0, "each recorded op should hold an event pair"
            prof.step()
            assert timer.pending == 0, "prof.step() resolves the step's pairs"
    graphs = prof.graphs
    assert len(graphs) == 2 and all(len(g.nodes) > 5 for g in graphs)
    # CPU ops: a host-side pair is no device time
    assert all(n.device_ns is None for g in graphs for n in g.nodes)
    assert timer.pool_size >= len(graphs[0].nodes)


def test_only_ops_on_cuda_tensors_keep_their_device_time():
    b = StepBuilder(None, StepMeta(run="r", step=0), scope=None, baseline={}, start_peek=0, keep_limit=10)
    b.device_times = {0: 1234, 1: 99}
    on_gpu = (TensorMeta((2,), "float32", "cuda:0", 8, 1),)
    on_cpu = (TensorMeta((2,), "float32", "cpu", 8, 2),)
    assert b._device_ns(0, on_gpu, ()) == 1234
    assert b._device_ns(1, on_cpu, on_cpu) is None
    assert b._device_ns(2, on_gpu, ()) is None  # no pair was assigned to this node
    assert b.device_times == {}, "resolved times are consumed once"


def test_no_timer_on_a_machine_without_cuda(tmp_path):
    if torch.cuda.is_available():
        import pytest

        pytest.skip("this machine has CUDA; the CPU-only default is what is checked here")
    assert DeviceTimer.for_current_machine() is None
    with gprof.profile(logdir=tmp_path, run="x", analyze=False) as prof:
        assert prof.session.recorder.device_timer is None
