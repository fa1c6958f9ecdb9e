"""``torch-gprof debug script.py`` on a plain script that starts its ranks with
``torch.multiprocessing.spawn`` (2 ranks, gloo, an all-reduce per step): every rank is recorded,
the UI follows rank 0 (whose hit waits for it), ``}`` switches to rank 1, and the log says how to
attach from another terminal. Real processes throughout: the debug UI (Pilot, headless) drives the
same child process ``torch-gprof debug`` starts (gprof_tui/child.py), over the real protocol;
the second test types the command in tmux."""
from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gprof_tui.child import DebuggedScript
from gprof_tui.debug import DebugApp
from test_debug_tmux import CLI, Tmux
from test_tui_debug import screen_text, until
from textual.widgets import RichLog

from gprof.debug import DebugClient
from gprof.store import open_run

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")]

#: no gprof import, no profiler code: the debugger records it whole and follows the spawned ranks
SPAWN_SCRIPT = """
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def worker(rank, world, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        loss = model(torch.ones(3, 4) * (rank + 1)).sum()
        loss.backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)  # the ranks move in lockstep: a paused rank holds the other
        opt.step()
        opt.zero_grad()
        print(f"rank {rank} step {step} loss {loss.item():.4f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print(f"launcher set-up {float((torch.ones(2) * 2).sum())}", flush=True)  # recorded, then dropped at spawn
    mp.spawn(worker, args=(2, port), nprocs=2)
    print("all ranks done", flush=True)
"""


def test_spawned_ranks_are_all_recorded_and_the_ui_follows_rank_0_then_switches(tmp_path: Path) -> None:
    script = tmp_path / "spawn_train.py"
    script.write_text(SPAWN_SCRIPT)
    child = DebuggedScript(str(script), [], ["addmm:forward"], logdir=str(tmp_path / "runs"))
    try:
        def connect(on_event: Callable[[dict[str, Any]], None]) -> DebugClient:  # as `torch-gprof debug` does
            address, token = child.wait_for_server()
            return DebugClient(address, token, on_event)

        async def go() -> None:
            app = DebugApp(connect, title="spawn", output=child.redirect, wait_exit=child.proc.wait)
            async with app.run_test(size=(170, 50)) as p:
                # the launcher's server announces the ranks; the UI follows rank 0, which waits for it
                await until(p, lambda: app.ranks is not None, "the ranks event")
                assert (app.ranks["run_dir"], app.ranks["world_size"]) == (f"{tmp_path}/runs/spawn_train", 2)
                await until(p, lambda: app.rank == 0 and app.pause is not None, "rank 0's pause")
                assert app.pause["op"] == "aten.addmm.default" and app.pause["step"] == 0
                assert app.sub_title.startswith("rank 0  PAUSED at aten.addmm.default")
                # the log pane tells how to reach any rank from another terminal
                log = "\n".join(line.text for line in app.query_one("#log", RichLog).lines)
                assert f"torch-gprof attach {tmp_path}/runs/spawn_train --rank R" in log
                # } follows rank 1: it pauses at its next hit (rank 0 resumes when the UI leaves it)
                await p.press("right_curly_bracket")
                await until(p, lambda: app.rank == 1, "following rank 1")
                await until(p, lambda: app.pause is not None, "rank 1's pause")
                assert app.pause["op"] == "aten.addmm.default" and app.sub_title.startswith("rank 1  PAUSED")
                assert "aten.addmm.default" in screen_text(app, "#pause")
                # detach: both ranks run to the end
                await p.press("q")

        asyncio.run(go())
        assert child.finish() == 0
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()
    out = "\n".join(child.lines)
    assert "all ranks done" in out and "rank 1 step 2 loss" in out and "rank 0 step 2 loss" in out
    found = open_run(tmp_path / "runs" / "spawn_train").files()
    # only the ranks' files: the launcher's set-up before spawning is no step of a rank
    assert all(f.path.name.endswith("-of-2.sqlite") for f in found), [f.path.name for f in found]
    files = {(f.step, f.rank) for f in found}
    # three optimizer steps per rank (and what ran after the last one, a partial step)
    assert {(s, r) for s in range(3) for r in (0, 1)} <= files
    assert {r for _, r in files} == {0, 1}


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/system-deps.sh installs it)")
@pytest.mark.skipif(not CLI.exists(), reason=f"{CLI} missing: pip install -e . puts the torch-gprof script there")
def test_spawned_ranks_in_tmux_with_the_cli(tmp_path: Path) -> None:
    """The same script, with the command a user types, in a real terminal: the header names the
    rank followed, ``}`` switches it, ``q`` lets both ranks finish."""
    (tmp_path / "spawn_train.py").write_text(SPAWN_SCRIPT)
    done = tmp_path / "done"
    t = Tmux(f"cd {tmp_path} && env -u COLUMNS -u LINES {CLI} debug --break addmm:forward spawn_train.py; "
             f"touch {done}; sleep 60")
    try:
        t.wait(r"rank 0  PAUSED at aten\.addmm\.default")
        t.wait_all("torch-gprof attach runs/spawn_train --rank R", "op     aten.addmm.default")
        t.keys("}")
        t.wait(r"rank 1  PAUSED at aten\.addmm\.default")
        t.keys("q")
        s = t.wait(r"spawn_train\.py exited with code 0")
        assert "all ranks done" in s
        deadline = time.monotonic() + 30
        while not done.exists():  # the command has returned
            assert time.monotonic() < deadline, t.screen()
            time.sleep(0.2)
    finally:
        t.close()
    found = open_run(tmp_path / "runs" / "spawn_train").files()
    # only the ranks' files: the launcher's set-up before spawning is no step of a rank
    assert all(f.path.name.endswith("-of-2.sqlite") for f in found), [f.path.name for f in found]
    files = {(f.step, f.rank) for f in found}
    assert {(s, r) for s in range(3) for r in (0, 1)} <= files
