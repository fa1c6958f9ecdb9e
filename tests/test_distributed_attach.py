"""The debugger attached to one rank of a real 2-rank gloo DDP job: both ranks write their
address file into the run, a UI connects to rank 1's server the way ``torch-gprof attach RUN
--rank 1`` does, and rank 1 pauses on a node (the other rank waits for it in the allreduce), is
inspected, and resumes, step after step."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist

import gprof
from examples import ddp_train
from gprof.debug import debug
from gprof.debug.client import DebugClient, resolve_target
from gprof.store import open_run
from gprof.store.runs import debug_address_path

BREAK_KEY = "module.2:forward:aten.addmm.default#0"
STEPS = 2
TIMEOUT_S = 60.0


def _attach_job(logdir: str) -> None:
    rank, _ = ddp_train.init_gloo(timeout_s=TIMEOUT_S)
    with gprof.profile(logdir=logdir, run="attach") as prof:
        session = debug(prof, breaks=[BREAK_KEY] if rank == 1 else [], quiet=True)
        try:
            if rank == 1 and not session.wait_for_client(timeout=TIMEOUT_S):
                raise TimeoutError("no debugger UI attached to rank 1")
            ddp_train.train(rank, STEPS, prof)
        finally:
            session.close()
    dist.destroy_process_group()


def _next(events: queue.Queue, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            e = events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if e.get("event") == name:
            return e
    raise AssertionError(f"no {name!r} event from rank 1 within {TIMEOUT_S:.0f} s")


@pytest.mark.slow
def test_attach_to_rank_1_pause_inspect_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "attach"
    failures: list[BaseException] = []

    def job() -> None:
        try:
            ddp_train.spawn_local(_attach_job, 2, (str(tmp_path),), timeout_s=2 * TIMEOUT_S)
        except BaseException as e:  # reported by the assertion below
            failures.append(e)

    runner = threading.Thread(target=job, daemon=True)
    runner.start()
    files = [debug_address_path(run_dir, r) for r in range(2)]
    deadline = time.monotonic() + TIMEOUT_S
    while not all(f.is_file() for f in files):
        assert not failures, failures
        assert time.monotonic() < deadline, f"ranks never wrote {[f.name for f in files]}"
        time.sleep(0.05)

    events: queue.Queue = queue.Queue()
    client = DebugClient(*resolve_target(str(run_dir), rank=1), on_event=events.put)
    try:
        assert [b["spec"] for b in client.hello["breakpoints"]] == [BREAK_KEY]
        for step in range(STEPS):
            pause = _next(events, "paused")["pause"]
            assert (pause["key"], pause["module"], pause["phase"]) == (BREAK_KEY, "module.2", "forward")
            assert pause["step"] == step
            assert client.request("eval", expr="tuple(out.shape)")["repr"] == "(16, 64)"
            client.request("continue")
            _next(events, "running")
    finally:
        client.close()
    runner.join(2 * TIMEOUT_S)
    assert not runner.is_alive() and not failures, failures
    run = open_run(run_dir)
    assert {(f.step, f.rank) for f in run.files()} == {(s, r) for s in range(STEPS) for r in range(2)}
    assert not any(f.exists() for f in files), "each rank removes its address file when it ends"
