"""What pudb users reach for, in the debug UI (Pilot, headless, over the real protocol to a
training loop on a worker thread): the source pane, ``x`` in the user's frame, up/down the
stack, a breakpoint on a source line, pause-now and stop."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from gprof_tui.debug import DebugApp
from test_tui_debug import screen_text, until
from torch import nn

import gprof
from gprof.debug import DebugClient, DebugSession
from gprof.debug.controller import STOP_MESSAGE

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.gain = nn.Parameter(torch.full((4,), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * self.gain  # the line breakpoint's line


LINE = Scaled.forward.__code__.co_firstlineno + 1


class LoopRun:
    """A training loop (optimizer steps end steps) on a worker thread, until stopped, finished
    or 30 s."""

    def __init__(self, logdir: Path, breaks: list[str]) -> None:
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.session = DebugSession(breaks, wait=True)
        self.thread = threading.Thread(target=self._work, args=(logdir,), name="trainer", daemon=True)
        self.thread.start()

    def _work(self, logdir: Path) -> None:
        torch.manual_seed(0)
        model = Scaled()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        try:
            with gprof.profile(logdir=logdir, run="loop", step_boundary="optimizer") as prof:
                self.session.observe(prof)
                deadline = time.monotonic() + 30
                step = 0
                while time.monotonic() < deadline and not self.done.is_set():
                    model(torch.ones(2, 4)).sum().backward()
                    opt.step()
                    opt.zero_grad()
                    step += 1
        except BaseException as e:
            self.error = e

    def client(self, on_event: Any) -> DebugClient:
        return DebugClient(self.session.address, self.session.token, on_event)

    def finish(self) -> None:
        self.done.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.session.close()


def test_source_pane_frame_eval_stack_and_line_breakpoint(tmp_path: Path) -> None:
    run = LoopRun(tmp_path, [f"test_tui_debug_pudb.py:{LINE}"])

    async def go() -> None:
        app = DebugApp(run.client)
        async with app.run_test(size=(160, 45)) as p:
            await until(p, lambda: app.pause is not None, "the line breakpoint")
            assert app.pause["source"].endswith(f"test_tui_debug_pudb.py:{LINE} in forward")
            source = screen_text(app, "#source")
            assert f"▶{LINE:>5}         return self.lin(x) * self.gain" in source
            # x evaluates in the innermost user frame: its locals and self
            await p.press("x", *"self.gain.sum() + x.shape[0]", "enter")
            await until(p, lambda: "tensor(10.)" in screen_text(app, "#evalout"), "the frame eval")
            # u: the caller's frame (the training loop), where `step` is a local
            await p.press("u")
            await until(p, lambda: app.frame_index == 1, "moving up")
            assert "in _work" in str(app.query_one("#source-box").border_title)
            assert "model(torch.ones(2, 4)).sum().backward()" in screen_text(app, "#source")
            assert "▶ _work" in screen_text(app, "#stack")
            await p.press("x", *"step >= 0", "enter")
            await until(p, lambda: screen_text(app, "#evalout").endswith("True"), "the eval in the outer frame")
            await p.press("d")
            await until(p, lambda: app.frame_index == 0, "moving down")
            await p.press("d")  # already innermost: says so, stays
            assert app.frame_index == 0
            await p.press("q")

    asyncio.run(go())
    run.finish()
    assert run.error is None


def test_pause_now_and_stop(tmp_path: Path) -> None:
    run = LoopRun(tmp_path, ["nan"])  # nothing to hit: the loop runs until asked

    async def go() -> None:
        app = DebugApp(run.client)
        async with app.run_test(size=(160, 45)) as p:
            await until(p, lambda: app.client is not None, "the connection")
            await p.press("p")
            await until(p, lambda: app.pause is not None, "the pause-now")
            assert app.pause["reason"] == "paused at your request"
            await p.press("k")
            await until(p, lambda: not run.thread.is_alive(), "the stop")

    asyncio.run(go())
    run.finish()
    assert isinstance(run.error, KeyboardInterrupt) and str(run.error) == STOP_MESSAGE
