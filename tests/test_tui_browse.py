"""Browse flows of the terminal UI, driven headless with Textual's Pilot on real step files."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from gprof_tui.browse import BrowseApp, BrowseScreen
from gprof_tui.help import HelpScreen
from textual.widgets import DataTable, Sparkline, Static, TabbedContent, TextArea, Tree

import gprof
from examples import mlp
from examples._harness import train
from gprof.cli import main
from gprof.graph.model import MemorySummary, ModuleInfo, Node, StepMeta, TensorMeta
from gprof.store import StepWriter, plugin_dir, step_filename


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logdir = tmp_path_factory.mktemp("tui")
    with gprof.profile(logdir=logdir, run="mlp") as prof:
        train(lambda: mlp.make(2), mlp.step, profile=prof)
    return logdir / "mlp"


def analysed_run(logdir: Path, analyses: dict[str, Any]) -> Path:
    """A two-rank, tiny step written with StepWriter, carrying the given analysis results."""
    t = TensorMeta((4, 4), "float32", "cpu", 64, 1)
    for rank in (0, 1):
        w = StepWriter(plugin_dir(logdir, "syn") / step_filename(0, rank, 2))
        w.add_nodes([Node(idx=i, key=f"blk:forward:aten.relu.default#{i}", op="aten.relu.default", phase="forward",
                          module="blk", inputs=(t,), outputs=(t,), dur_ns=100 + i, live_bytes=64 * i) for i in range(5)])
        w.set_modules([ModuleInfo("blk", "Block")])
        for name, value in analyses.items():
            w.set_analysis(name, value)
        w.commit(StepMeta(run="syn", step=0, rank=rank, world_size=2, node_count=5), MemorySummary(peak_bytes=256, peak_node=4))
    return logdir / "syn"


def pilot(app: BrowseApp, body: Callable[[Any, BrowseApp], Awaitable[None]]) -> None:
    async def go() -> None:
        async with app.run_test(size=(170, 50)) as p:
            await p.pause()
            await body(p, app)

    asyncio.run(go())


def text(app: BrowseApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def show(p: Any, tabs: TabbedContent, pane: str) -> None:
    """Open a tab; its content is built on first view."""
    tabs.active = pane
    await p.pause()


async def wait_for(p: Any, cond: Callable[[], bool]) -> None:
    for _ in range(500):
        if cond():
            return
        await p.pause(0.02)
    raise AssertionError("the UI did not get there")


def test_browse_tree_table_details_filter_sort_steps_help(mlp_run: Path) -> None:
    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        table = screen.query_one("#nodes", DataTable)
        assert table.row_count == screen.data.count() > 50  # a small step fits one page
        assert "step 1" in screen.sub_title
        await wait_for(p, lambda: screen.modules_ready)
        tree = screen.query_one("#modules", Tree)
        labels = [str(n.label) for n in tree.root.children]
        assert any(label.startswith("net") and "ms" in label for label in labels)
        # details: the first node is net.0's transpose, with inputs, source and a backward partner
        details = text(app, "#details")
        assert "aten.t.default" in details and "net.0" in details and "mlp.py" in details
        assert "backward partners" in details
        # a backward node shows its forward partner
        await p.press("slash")
        await p.press(*"mm", "enter")
        await p.pause()
        assert "filter 'mm'" in text(app, "#status")
        ops = {table.get_row_at(r)[1] for r in range(table.row_count)}
        assert ops <= {"addmm", "mm"} and "mm" in ops
        mm_row = next(r for r in range(table.row_count) if table.get_row_at(r)[1] == "mm")
        table.move_cursor(row=mm_row)
        await p.pause()
        assert "forward partner" in text(app, "#details")
        await p.press("escape")
        # sort: the 'o' key cycles columns; clicking a header sorts by it
        await p.press("o")
        assert "sorted by op asc" in text(app, "#status")
        table.post_message(DataTable.HeaderSelected(table, table.ordered_columns[4].key, 4, "time"))
        await p.pause()
        durs = [screen.data.node(int(table.get_row_at(r)[0])).dur_ns for r in range(5)]
        assert durs == sorted(durs, reverse=True)
        # switch step and back
        await p.press("left_square_bracket")
        assert "step 0" in screen.sub_title
        await p.press("left_square_bracket")
        assert "step 0" in screen.sub_title  # no earlier step: stays, with a message
        await p.press("right_square_bracket")
        assert "step 1" in screen.sub_title
        # a module in the tree narrows the table
        net2 = next(n for n in tree.root.children if n.data == "net")
        tree.select_node(net2)
        await p.pause()
        assert "module net" in text(app, "#status")
        # help
        await p.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await p.press("escape")
        assert app.screen is screen
        await p.press("q")

    pilot(BrowseApp(str(mlp_run)), body)


def test_analyses_tabs_ranks_snippet_and_memory(tmp_path: Path) -> None:
    run = analysed_run(tmp_path, {
        "fusion": {"chains": [{"nodes": [0, 1, 2], "ops": ["relu", "relu", "relu"], "saved_kernels": 2}]},
        "compile_suggestions": [{"module": "blk", "speedup": 1.8,
                                 "snippet": "model.blk = torch.compile(model.blk)"}],
        "hazards": {"error": "ValueError: boom"},
    })

    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert "rank 0/2" in screen.sub_title
        tabs = screen.query_one("#tabs", TabbedContent)
        await show(p, tabs, "tab-fusion")
        await p.press("right_curly_bracket")  # the open tab is rebuilt for the other rank
        assert "rank 1/2" in screen.sub_title
        await p.pause()
        assert "saved_kernels=2" in text(app, "#fusion") and "relu, relu, relu" in text(app, "#fusion")
        await show(p, tabs, "tab-hazards")
        assert "hazards analysis failed: ValueError: boom" in text(app, "#hazards")
        tabs.active = "tab-compile"
        await p.pause()
        assert screen.query_one("#snippet", TextArea).text == "model.blk = torch.compile(model.blk)"
        await p.press("y")
        assert app.clipboard == "model.blk = torch.compile(model.blk)"
        await show(p, tabs, "tab-memory")
        await wait_for(p, lambda: bool(screen.query_one("#memplot", Sparkline).data))
        assert list(screen.query_one("#memplot", Sparkline).data) == [0, 64, 128, 192, 256]
        assert "peak 256 B at node 4" in text(app, "#memtext")

    pilot(BrowseApp(str(run)), body)


def test_missing_analyses_say_there_are_none(tmp_path: Path) -> None:
    async def body(p: Any, app: BrowseApp) -> None:
        tabs = app.screen.query_one("#tabs", TabbedContent)
        await show(p, tabs, "tab-fusion")
        assert "No fusion for this step" in text(app, "#fusion")
        await show(p, tabs, "tab-hazards")
        assert "No hazards for this step" in text(app, "#hazards")
        await show(p, tabs, "tab-compile")
        assert "No compile suggestions" in str(app.screen.query_one("#suggestions ListItem Static", Static).render())
        await show(p, tabs, "tab-graph")
        await p.press("b")  # no debugger: b shows the --break for the selected node
        assert app.clipboard == "blk:forward:aten.relu.default#0"

    pilot(BrowseApp(str(analysed_run(tmp_path, {}))), body)


def test_tui_command_rejects_a_bad_run_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["tui", str(analysed_run(tmp_path, {})), "--step", "7"]) == 2
    assert "has no step 7; steps: [0]" in capsys.readouterr().err
