"""The debug UI's keys and rough edges (issue 15), Pilot, headless, over the real protocol to a
training loop on a worker thread: E edits and Del deletes the selected breakpoint, a tensor with
no finite value reads "all NaN", help renders its markup and lists every key the footer offers,
and at 100x30 the NaN/Inf columns, detach and help stay on screen."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from gprof_tui.debug import DebugApp
from gprof_tui.debug_screen import KEYS
from gprof_tui.help import _KEY_NAMES, HelpScreen
from gprof_tui.widgets.prompt import Prompt
from test_tui_debug import screen_text, until
from test_tui_debug_pudb import LoopRun, Scaled
from textual.widgets import DataTable, ListView, Static
from textual.widgets._footer import FooterKey  # the footer's key widget; textual exports no public name

import gprof
from gprof.debug import DebugClient, DebugSession

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


class NanLoop:
    """A training loop whose parameter ``gain`` is NaN from the start, on a worker thread: the
    default ``nan`` pauses at the first op that reads it, whose output is all NaN."""

    def __init__(self, logdir: Path) -> None:
        self.error: BaseException | None = None
        self.session = DebugSession(["nan"], wait=True)
        self.thread = threading.Thread(target=self._work, args=(logdir,), name="trainer", daemon=True)
        self.thread.start()

    def _work(self, logdir: Path) -> None:
        torch.manual_seed(0)
        model = Scaled()
        with torch.no_grad():
            model.gain.fill_(float("nan"))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        try:
            with gprof.profile(logdir=logdir, run="nan", step_boundary="optimizer") as prof:
                self.session.observe(prof)
                for _ in range(2):
                    model(torch.ones(2, 4)).sum().backward()
                    opt.step()
                    opt.zero_grad()
        except BaseException as e:
            self.error = e

    def client(self, on_event: Any) -> DebugClient:
        return DebugClient(self.session.address, self.session.token, on_event)

    def finish(self) -> None:
        self.thread.join(60)
        assert not self.thread.is_alive()
        self.session.close()
        assert self.error is None, self.error


def _notes(app: DebugApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def test_edit_and_delete_the_selected_breakpoint(tmp_path: Path) -> None:
    run = LoopRun(tmp_path, ["mm:backward", "@lin:forward"])

    async def go() -> None:
        app = DebugApp(run.client)
        async with app.run_test(size=(160, 45)) as p:
            await until(p, lambda: app.pause is not None and len(app.breakpoints) == 2, "the first pause")
            lv = app.query_one("#breaks", ListView)
            # E on the second breakpoint: the prompt holds its spec, Enter replaces it (same id)
            lv.index = 1
            await p.press("E")
            prompt = app.query_one(Prompt)
            assert prompt.has_focus and prompt.value == "@lin:forward"
            prompt.value = ""
            await p.press(*"addmm:forward if absmax >= 0", "enter")
            await until(p, lambda: app.breakpoints[1]["spec"] != "@lin:forward", "the edit")
            assert app.breakpoints[1]["id"] == 2 and app.breakpoints[1]["spec"] == "addmm:forward if absmax >= 0"
            assert "2: addmm:forward if absmax >= 0" in str(lv.children[1].query_one(Static).render())
            # the program stops on the edited target and condition now
            await p.press("c")
            await until(p, lambda: app.pause is not None and app.pause["op"] == "aten.addmm.default",
                        "the edited breakpoint's stop")
            assert app.pause["reason"].startswith("breakpoint 2 (addmm:forward if absmax >= 0)")
            # a bad spec is an error and changes nothing
            lv.index = 1
            await p.press("E")
            prompt.value = ""
            await p.press(*"absmax > lots", "enter")
            await until(p, lambda: any("absmax needs a number" in n for n in _notes(app)), "the spec error")
            assert app.breakpoints[1]["spec"] == "addmm:forward if absmax >= 0"
            # Esc leaves an edit without changing anything
            await p.press("E", "x", "escape")
            assert not prompt.display and app.breakpoints[1]["spec"] == "addmm:forward if absmax >= 0"
            # Del deletes the selected breakpoint, whatever had the focus before (the prompt did)
            lv.index = 0
            await p.press("delete")
            await until(p, lambda: len(app.breakpoints) == 1, "the delete")
            assert app.breakpoints[0]["id"] == 2 and len(lv.children) == 1
            # with nothing selected, E and Del say what to do instead
            lv.index = None
            await p.press("delete")
            await p.press("E")
            assert _notes(app)[-1].startswith("select a breakpoint in the list first")
            assert len(app.breakpoints) == 1 and not prompt.display
            await p.press("q")

    asyncio.run(go())
    run.finish()
    assert run.error is None


def _visible(app: DebugApp, widget: Any) -> bool:
    """The whole widget lies on screen (not cut by the terminal's right or bottom edge)."""
    r, screen = widget.region, app.screen.region
    return r.width > 0 and r.height > 0 and screen.contains_region(r)


def test_all_nan_tensors_at_100x30_with_the_anomaly_columns_and_keys_in_view(tmp_path: Path) -> None:
    run = NanLoop(tmp_path)

    async def go() -> None:
        app = DebugApp(run.client)
        async with app.run_test(size=(100, 30)) as p:
            await until(p, lambda: app.pause is not None, "the NaN pause")
            assert "parameter gain holds NaN at [0]" in app.pause["reason"]
            await p.pause()
            # the tensor table: the all-NaN output has no finite statistics ("-"), only its NaN count
            table = app.query_one("#tensors", DataTable)
            rows = {str(table.get_row_at(r)[0]): [str(c) for c in table.get_row_at(r)] for r in range(table.row_count)}
            assert "in1" in rows and "out0" in rows
            assert rows["in1"][3:9] == ["4", "0", "-", "-", "-", "-"]  # gain: NaN 4, Inf 0, min max mean std
            assert rows["out0"][3] == "8" and rows["out0"][5:9] == ["-", "-", "-", "-"]
            # at 100 columns the NaN and Inf columns are on screen, not scrolled off to the right
            x = table.region.x
            for col in table.ordered_columns[:5]:  # name, shape, dtype, NaN, Inf
                x += col.get_render_width(table)
            assert [str(c.label) for c in table.ordered_columns[3:5]] == ["NaN", "Inf"]
            assert x <= table.region.right and table.region.right <= 100
            # detach and help lead the footer, both on screen
            keys = {k.key: k for k in app.screen.query(FooterKey)}
            assert _visible(app, keys["q"]) and _visible(app, keys["question_mark"])
            assert keys["q"].description == "detach" and keys["question_mark"].description == "help"
            # x on a tensor with no finite value says so (no 'min None')
            await p.press("x", *"out", "enter")
            await until(p, lambda: bool(screen_text(app, "#evalout")), "the eval result")
            evalout = screen_text(app, "#evalout")
            assert evalout.startswith("float32[2x4] all NaN") and "None" not in evalout.splitlines()[0]
            await p.press("x", *"out.masked_fill(out.isnan(), float('inf'))", "enter")
            await until(p, lambda: "all Inf" in screen_text(app, "#evalout"), "the all-Inf result")
            await p.press("x", *"torch.stack([in1[0], torch.tensor(float('-inf'))])", "enter")
            await until(p, lambda: "all NaN or Inf" in screen_text(app, "#evalout"), "the mixed result")
            await p.press("q")

    asyncio.run(go())
    run.finish()


def test_help_renders_its_markup_and_lists_every_footer_key(tmp_path: Path) -> None:
    run = LoopRun(tmp_path, ["nan"])  # nothing to hit: keys work while the program runs

    async def go() -> None:
        app = DebugApp(run.client)
        async with app.run_test(size=(200, 50)) as p:
            await until(p, lambda: app.client is not None, "the connection")
            # the footer offers every key of the table, detach and help first
            await until(p, lambda: len(app.screen.query(FooterKey)) >= len(KEYS), "the footer")
            footer = [(k.key, k.description) for k in app.screen.query(FooterKey)]
            assert footer == [(key, label) for key, _, label, _ in KEYS]
            await p.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await p.pause()
            shown = app.screen.query_one("#help Static", Static).render()
            text = str(shown)
            # markup became styles: no tag is left in the text, and the key names are bold
            assert "[/b]" not in text and "[b" not in text and "[/" not in text
            assert any("bold" in str(span.style) for span in shown.spans)
            # only the title is underlined (a style on the whole text underlined every padding space)
            assert [text[s.start:s.end] for s in shown.spans if "underline" in str(s.style)] == [
                "torch-gprof debugger keys"]
            lines = text.splitlines()
            for key, _, _, help_text in KEYS:  # every footer key, as the user types it, with its text
                name = _KEY_NAMES.get(key, key)
                assert any(line.split(None, 1) == [name, help_text] for line in lines), (name, help_text)
            assert "Esc closes this help." in text
            await p.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            await p.press("q")

    asyncio.run(go())
    run.finish()
    assert run.error is None


def test_help_of_the_step_browser_renders_keys_that_look_like_markup(tmp_path: Path) -> None:
    """Browse help's keys include ``]`` and ``[``: escaped, they neither vanish nor eat the bold."""
    from gprof_tui.help import KEYS as HELP_KEYS
    from textual.app import App

    async def go() -> None:
        app: App = App()
        async with app.run_test(size=(120, 40)) as p:
            await app.push_screen(HelpScreen("browse"))
            await p.pause()
            text = str(app.screen.query_one("#help Static", Static).render())
            assert "[/b]" not in text
            lines = text.splitlines()
            for key, help_text in HELP_KEYS["browse"]:
                assert any(line.startswith(key) and line.rstrip().endswith(help_text) for line in lines), key

    asyncio.run(go())
