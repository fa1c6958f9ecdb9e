"""The step worker (issue 17): a handed-off step is the step the in-process path would have written,
every step is written, and nothing handed off is lost when the worker is killed, the step raises,
or the interpreter exits without closing the profile; it works under the ``spawn`` start method.
(Two real gloo ranks, each with its worker, run in tests/test_distributed_jobs.py.)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

import gprof
from gprof.capture import handoff
from gprof.capture.builder import StepBuilder
from gprof.capture.handoff import complete_step
from gprof.capture.worker import StepWorker
from gprof.store import open_run
from gprof.store.step_file import StepReader, StepWriter
from tests.conftest import ROOT, bitwise_equal, seeded_net

STEPS = 4


def _train(prof: gprof.profile | None, steps: int = STEPS) -> torch.nn.Module:
    model, x = seeded_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        model(x).sum().backward()
        opt.step()
        opt.zero_grad()
        if prof is not None:
            prof.step()
    return model


def _ready_worker() -> StepWorker:
    worker = StepWorker.shared()
    worker.collect(timeout=None)  # its imports are done
    return worker


def test_handed_off_step_is_the_in_process_step(tmp_path, monkeypatch) -> None:
    """Same raw records, built both ways: the worker's graph equals the in-process build exactly."""
    spooled: dict[int, dict] = {}
    real_init, real_add, real_finish = (handoff.SpooledStep.__init__, handoff.SpooledStep.add,
                                        handoff.SpooledStep.finish)

    def init(self, path, header):
        spooled[header.meta.step] = {"header": header, "records": [], "end": None}
        real_init(self, path, header)

    def add(self, records, device_times, params):
        spooled[self.step]["records"].extend(records)
        real_add(self, records, device_times, params)

    def finish(self, end):
        spooled[self.step]["end"] = end
        real_finish(self, end)

    monkeypatch.setattr(handoff.SpooledStep, "__init__", init)
    monkeypatch.setattr(handoff.SpooledStep, "add", add)
    monkeypatch.setattr(handoff.SpooledStep, "finish", finish)
    with gprof.profile(tmp_path, run="w") as prof:
        _train(prof)
    assert len(prof.graphs) == STEPS and prof.session.queue is not None
    for worker_graph in prof.graphs:
        s = spooled[worker_graph.meta.step]
        h = s["header"]
        builder = StepBuilder(None, h.meta, prof.session.scope, h.baseline, h.start_peek,
                                      keep_limit=h.keep_limit, state_params=h.state_params, cwd=h.cwd)
        builder.consume(s["records"])
        here, _ = complete_step(builder, s["end"], h.analyze, StepWriter(tmp_path / "here.sqlite"))
        assert asdict(here.meta) == asdict(worker_graph.meta)
        assert asdict(here.memory) == asdict(worker_graph.memory)
        assert here.nodes == worker_graph.nodes and here.edges == worker_graph.edges
        assert here.analyses == worker_graph.analyses and here.modules == worker_graph.modules
        assert asdict(gprof.load(open_run(prof.run_dir).file(worker_graph.meta.step).path).meta) == \
            asdict(worker_graph.meta)


def test_training_is_bit_identical_and_every_step_written(tmp_path) -> None:
    plain = _train(None).parameters()
    seen: list[tuple[int, Path | None]] = []
    with gprof.profile(tmp_path, run="w", on_step_saved=lambda g, p: seen.append((g.meta.step, p))) as prof:
        profiled = _train(prof)
    assert all(bitwise_equal(a, b) for a, b in zip(plain, profiled.parameters()))
    assert open_run(prof.run_dir).steps() == list(range(STEPS))
    assert [s for s, _ in seen] == list(range(STEPS)) and all(p is not None and p.exists() for _, p in seen)
    assert [g.meta.step for g in prof.graphs] == list(range(STEPS))
    in_process = gprof.profile(tmp_path, run="p", worker=False)
    with in_process:
        _train(in_process)
    assert in_process.session.queue is None
    assert [g.meta.node_count for g in in_process.graphs] == [g.meta.node_count for g in prof.graphs]


@torch.library.custom_op("gproftest::peek", mutates_args=(), tags=(torch.Tag.data_dependent_output,))
def _peek(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


def test_the_worker_classifies_ops_as_the_training_process_does(tmp_path) -> None:
    """An op the user's code registers exists in the training process only: the worker, a fresh
    interpreter, learns its facts from the spool, so its tag (a data-dependent output: a graph-break
    hazard) is in the handed-off step's analyses and stored facts as in an in-process build."""
    class Peek(torch.nn.Module):
        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return h + torch.ops.gproftest.peek(h.detach())

    def train(prof: gprof.profile) -> None:
        net, x = seeded_net()
        model = torch.nn.Sequential(net, Peek())
        model(x).sum().backward()
        prof.step()

    _ready_worker()  # one step, and the worker ready for it: the worker builds it, not the closing thread
    steps = {}
    for run, worker in (("w", True), ("p", False)):
        with gprof.profile(tmp_path, run=run, worker=worker) as prof:
            train(prof)
        assert (prof.session.queue is not None) == worker
        steps[run] = [gprof.load(f.path) for f in open_run(prof.run_dir).files()]
    for w, p in zip(steps["w"], steps["p"]):
        hazards = [(h["kind"], h["op"]) for h in w.analyses["hazards"]]
        assert ("data_dependent", "gproftest.peek.default") in hazards
        assert hazards == [(h["kind"], h["op"]) for h in p.analyses["hazards"]]
        assert w.analyses["op_classes"] == p.analyses["op_classes"]
    with StepReader(open_run(tmp_path / "w").files()[0].path) as r:
        facts = r.op_facts()
    assert facts is not None and "data_dependent_output" in facts["gproftest.peek.default"].tags


def test_an_observer_keeps_steps_in_process(tmp_path, monkeypatch) -> None:
    """The debugger attaches its observer as the profile is entered: no worker, every node at once."""
    seen = []
    monkeypatch.setattr(gprof.profile, "enter_hooks", [lambda prof: prof.add_observer(lambda node, *a: seen.append(node))])
    with gprof.profile(tmp_path, run="o") as prof:
        assert prof.session.queue is None
        _train(prof, steps=2)
    assert seen and all(n is not None for n in seen)
    assert open_run(prof.run_dir).steps()[:2] == [0, 1]


def test_killed_worker_loses_nothing_handed_off(tmp_path) -> None:
    worker = _ready_worker()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(tmp_path, run="k") as prof:
            model, x = seeded_net()
            model(x).sum().backward()
            prof.step()  # handed off ...
            os.kill(worker.proc.pid, signal.SIGKILL)  # ... and the worker dies before or while it answers
            worker.proc.wait()
            for _ in range(3):
                model(x).sum().backward()
                prof.step()
    stopped = [w for w in caught if "step worker" in str(w.message) and "stopped" in str(w.message)]
    assert len(stopped) == 1, [str(w.message) for w in caught]
    assert open_run(prof.run_dir).steps() == [0, 1, 2, 3]
    assert len(prof.graphs) == 4
    assert StepWorker.shared() is not worker and StepWorker.shared().alive, "the next profile gets a new worker"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_in_the_step_loses_nothing(tmp_path, error: type[BaseException]) -> None:
    with pytest.raises(error), gprof.profile(tmp_path, run="e") as prof:
        model, x = seeded_net()
        for _ in range(2):
            model(x).sum().backward()
            prof.step()
        model(x).sum()
        raise error("boom")
    run = open_run(prof.run_dir)
    assert run.steps() == [0, 1, 2]
    last = gprof.load(run.file(2).path).meta
    assert not last.complete and "boom" in (last.error or "")


def test_bounded_queue_waits_and_says_so_once(tmp_path) -> None:
    _ready_worker()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(tmp_path, run="b") as prof:
            assert prof.session.queue is not None
            prof.session.queue.max_behind = 0  # every hand-off waits for the worker
            _train(prof, steps=3)
    waited = [w for w in caught if "waited" in str(w.message)]
    assert len(waited) == 1 and "step worker" in str(waited[0].message)
    assert open_run(prof.run_dir).steps() == [0, 1, 2]


def _script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import torch
        import gprof
        from tests.conftest import seeded_net
        """) + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


def test_exit_without_close_loses_nothing_handed_off(tmp_path) -> None:
    """No ``if __name__ == "__main__"`` guard either: the worker never re-imports the script."""
    done = _script(tmp_path, """
        prof = gprof.profile(sys.argv[1], run="x").__enter__()
        model, x = seeded_net()
        for _ in range(3):
            model(x).sum().backward()
            prof.step()
        print("left without close", flush=True)
        """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("left without close") == 1
    assert open_run(tmp_path / "x").steps() == [0, 1, 2]


def test_spawn_start_method(tmp_path) -> None:
    done = _script(tmp_path, """
        import multiprocessing as mp

        def child(logdir):
            with gprof.profile(logdir, run="s") as prof:
                model, x = seeded_net()
                for _ in range(2):
                    model(x).sum().backward()
                    prof.step()
            assert len(prof.graphs) == 2

        if __name__ == "__main__":
            p = mp.get_context("spawn").Process(target=child, args=(sys.argv[1],))
            p.start()
            p.join()
            sys.exit(p.exitcode)
        """)
    assert done.returncode == 0, done.stderr
    assert open_run(tmp_path / "s").steps() == [0, 1]


def test_closing_builds_what_a_starting_worker_has_not_taken(tmp_path) -> None:
    """A short run does not wait for the worker to import torch: leaving the block builds the steps here."""
    old = StepWorker.shared()
    old.shutdown()
    worker = StepWorker.shared()
    os.kill(worker.proc.pid, signal.SIGSTOP)  # never ready, never takes a step
    try:
        with gprof.profile(tmp_path, run="s") as prof:
            _train(prof, steps=3)
        assert not worker.ready and not worker.pending
        assert open_run(prof.run_dir).steps()[:3] == [0, 1, 2] and len(prof.graphs) >= 3
    finally:
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.shutdown()


def test_graphs_are_read_from_the_step_files_on_first_use(tmp_path) -> None:
    """Without a step callback the worker sends back where each step is, not its pickled graph (a
    step the training thread built itself at the drain keeps its object)."""
    _ready_worker()
    with gprof.profile(tmp_path, run="f") as prof:
        _train(prof, steps=3)
    from_files = [(i, g._file[0]) for i, g in enumerate(prof._graphs)
                  if not isinstance(g, gprof.StepGraph) and g._graph is None and g._data is None]
    assert from_files, "the worker built at least one step and sent back where it is"
    i, path = from_files[0]
    path.unlink()
    with pytest.raises(RuntimeError, match=f"step {i} is read from its step file"):
        prof.graphs  # noqa: B018 - the property reads the files
    assert [g.meta.step for g in prof._graphs[:i]] == list(range(i)), "the steps before it were read"
