"""Debug flows of the terminal UI (Pilot, headless): the app attached over the real protocol to
a training step that runs on a worker thread in this process."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gprof_tui.browse import BrowseScreen
from gprof_tui.debug import DebugApp
from gprof_tui.help import HelpScreen
from test_debug_server import WorkerRun, reference_digest
from textual.widgets import DataTable, ListView, Static

from gprof.debug import DebugClient

#: an exception on a UI, client or server thread is a failure, not a warning
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def screen_text(app: DebugApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def until(p: Any, cond: Callable[[], bool], what: str) -> None:
    for _ in range(1500):
        if cond():
            return
        await p.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_debug_flow_pause_step_break_eval_browse_continue(tmp_path: Path) -> None:
    run = WorkerRun(tmp_path, ["nan"])
    assert run.session is not None
    address, token = run.session.address, run.session.token

    async def go() -> None:
        app = DebugApp(lambda on_event: DebugClient(address, token, on_event), title="test")
        async with app.run_test(size=(170, 50)) as p:
            await until(p, lambda: app.pause is not None, "the anomaly pause")
            pause = screen_text(app, "#pause")
            assert "aten.native_layer_norm.default" in pause and "module norm" in pause
            assert "parameter gain holds Inf" in pause and "aten.mul.Tensor" in pause
            assert "not the main thread" in pause
            assert "nan_example.py" in screen_text(app, "#stack")
            assert "▶" in screen_text(app, "#source") and "self.norm(h)" in screen_text(app, "#source")
            tensors = app.query_one("#tensors", DataTable)
            names = [str(tensors.get_row_at(r)[0]) for r in range(tensors.row_count)]
            assert names[:2] == ["in0", "in1"] and "out0" in names
            out0 = tensors.get_row_at(names.index("out0"))
            assert str(out0[3]) == "384" and str(out0[9]).startswith("[nan, nan")
            # evaluate an expression on the paused tensors
            await p.press("x")
            await p.press(*"out.isnan().sum()", "enter")
            await until(p, lambda: "tensor(384)" in screen_text(app, "#evalout"), "the eval result")
            # a bad breakpoint is an error notification, a good one lands in the list
            await p.press("b")
            await p.press(*"absmax > lots", "enter")
            await until(p, lambda: any("absmax needs a number" in str(n.message) for n in app._notifications),
                        "the spec error")
            await p.press("b")
            await p.press(*"@head", "enter")
            await until(p, lambda: len(app.breakpoints) == 2, "the new breakpoint")
            # step: the next node
            first = app.pause["idx"]
            await p.press("s")
            await until(p, lambda: app.pause is not None and app.pause["idx"] == first + 1, "the step")
            assert "PAUSED" in app.sub_title
            # continue: the @head breakpoint
            await p.press("c")
            await until(p, lambda: app.pause is not None and app.pause["module"] == "head", "the @head breakpoint")
            # disable it from the list (e), then help, then continue to the end of step 0 (r)
            lv = app.query_one("#breaks", ListView)
            lv.index = 1
            await p.press("e")
            await until(p, lambda: not app.breakpoints[1]["enabled"], "disabling")
            await p.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await p.press("escape")
            await p.press("r")
            await until(p, lambda: app.pause is not None and app.pause["idx"] is None, "the end of the step")
            # browse the step just recorded, and break on one of its nodes by picking it
            await p.press("t")
            browse = app.screen
            assert isinstance(browse, BrowseScreen) and browse.data.step == 0
            await p.pause()
            picked = browse.selected_node_key()
            await p.press("b")
            await until(p, lambda: len(app.breakpoints) == 3, "the picked breakpoint")
            assert picked is not None and app.breakpoints[2]["spec"] == picked
            await p.press("q")
            assert not isinstance(app.screen, BrowseScreen)
            # q: detach, the program runs to its end without further pauses
            await p.press("q")

    asyncio.run(go())
    assert run.finish() == reference_digest()
