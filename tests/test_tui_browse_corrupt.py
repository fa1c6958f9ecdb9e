"""The step browser on a run with damaged step files (issue 12, item 8), driven with Textual's Pilot
on real files: copies of a golden step, edited with sqlite3 by ``corrupt_steps``. A step whose
header reads but whose node rows do not decode shows what is wrong in its panes, and every other
step (and pane) stays usable; a step whose header does not decode is named and passed over. One
node row that does not decode is a marked row of its page, whose other rows all show and open."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from corrupt_steps import GOLDEN_LOGDIR, copy_step, corrupt, corrupt_node
from gprof_tui.browse import BrowseApp, BrowseScreen
from rich.text import Text
from test_tui_browse import show, text, wait_for
from textual.widgets import DataTable, Sparkline, TabbedContent

#: an exception on a worker thread (module totals, memory curve) is a failure, not a warning
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

GOLDEN_MLP = GOLDEN_LOGDIR / "mlp" / "plugins" / "gprof" / "step000001.rank0-of-1.sqlite"


def _run(tmp_path: Path, bad: dict[int, str]) -> Path:
    """Four copies of a golden MLP step; ``bad`` maps a step to its corruption kind."""
    run_dir = tmp_path / "mlp"
    for s in range(4):
        f = copy_step(GOLDEN_MLP, run_dir / "plugins" / "gprof", s)
        if s in bad:
            corrupt(f, bad[s])
    return run_dir


def _drive(app: BrowseApp, body: Any) -> None:
    async def go() -> None:
        async with app.run_test(size=(170, 50)) as p:
            await p.pause()
            await body(p, app)
            assert app.is_running, "the app ended (a crash inside Textual ends it)"

    asyncio.run(go())


def _notes(app: BrowseApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.parametrize("kind", ["node_inputs", "node_attrs"])
def test_a_step_with_corrupt_node_rows_says_so_and_the_others_still_show(tmp_path: Path, kind: str) -> None:
    run_dir = _run(tmp_path, {1: kind})

    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        table = screen.query_one("#nodes", DataTable)
        good_rows = table.row_count
        assert good_rows > 50 and "aten." in text(app, "#details")
        await p.press("right_square_bracket")  # to the corrupt step
        await p.pause()
        assert "step 1" in screen.sub_title
        # the node pane says what is wrong (which file, which node) and what to do
        message = text(app, "#nodes-error")
        assert screen.query_one("#nodes-error").display
        assert "This page of nodes cannot be read" in message
        assert "step000001.rank0-of-1.sqlite" in message and "node 0 does not decode" in message
        assert "Re-record the step, or delete the file" in message and "] [ } {" in message
        assert table.row_count == 0 and "no rows" in text(app, "#status")
        # the details pane no longer shows step 0's node
        assert text(app, "#details") == "select a node"
        assert screen.selected_node_key() is None
        # the other panes of this step still work: module names and totals (stored aggregates),
        # the memory tab (stored summary and curve), the analyses
        await wait_for(p, lambda: screen.modules_ready)
        assert screen.query_one("#modules").error is None
        tabs = screen.query_one("#tabs", TabbedContent)
        await show(p, tabs, "tab-memory")
        await wait_for(p, lambda: bool(screen.query_one("#memplot", Sparkline).data))
        assert "peak 12.17 MiB" in text(app, "#memtext")
        await show(p, tabs, "tab-fusion")
        assert text(app, "#fusion")
        await show(p, tabs, "tab-graph")
        # sorting and filtering on the bad step keep the message, never a traceback
        await p.press("o")
        await p.press("slash", *"mm", "enter")
        await p.pause()
        assert "cannot be read" in text(app, "#nodes-error")
        await p.press("escape")
        # on to the next step, which reads: rows, details, no message
        await p.press("right_square_bracket")
        await p.pause()
        assert "step 2" in screen.sub_title
        assert table.row_count == good_rows and not screen.query_one("#nodes-error").display
        assert "aten." in text(app, "#details")
        # and back through the bad one to the first
        await p.press("left_square_bracket", "left_square_bracket")
        await p.pause()
        assert "step 0" in screen.sub_title and table.row_count == good_rows
        assert not any("Traceback" in n for n in _notes(app))

    _drive(BrowseApp(str(run_dir), 0, 0), body)


def test_a_step_whose_header_does_not_decode_is_named_and_passed_over(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, {1: "meta_list", 2: "memory_null"})

    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        await p.press("right_square_bracket")
        await p.pause()
        # steps 1 and 2 do not open: each is named, and the browser lands on step 3
        assert "step 3" in screen.sub_title
        notes = _notes(app)
        assert any(n.startswith("skipped step 1 rank 0: ") and "meta is a JSON list" in n for n in notes)
        assert any(n.startswith("skipped step 2 rank 0: ") and "memory is a JSON null" in n for n in notes)
        assert screen.query_one("#nodes", DataTable).row_count > 50
        await p.press("left_square_bracket")
        await p.pause()
        assert "step 0" in screen.sub_title
        await p.press("left_square_bracket")  # nothing earlier: stays, says so
        assert "step 0" in screen.sub_title and "no earlier step" in _notes(app)[-1]

    _drive(BrowseApp(str(run_dir), 0, 0), body)


def _step_with_bad_rows(tmp_path: Path, bad: dict[int, str]) -> Path:
    """One copy of the golden MLP step (137 nodes: one page); ``bad`` maps a node to its row's damage."""
    run_dir = tmp_path / "mlp"
    f = copy_step(GOLDEN_MLP, run_dir / "plugins" / "gprof", 0)
    for idx, kind in bad.items():
        corrupt_node(f, idx, kind)
    return run_dir


def _row(table: DataTable, idx: int) -> int:
    """The table row showing node ``idx`` (a marked row reads '✗ idx')."""
    return next(r for r in range(table.row_count) if str(table.get_row_at(r)[0]).split()[-1] == str(idx))


@pytest.mark.parametrize("kind", ["node_inputs", "node_attrs"])
def test_one_bad_row_is_marked_and_the_rest_of_its_page_shows_and_opens(tmp_path: Path, kind: str) -> None:
    run_dir = _step_with_bad_rows(tmp_path, {60: kind})

    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        table = screen.query_one("#nodes", DataTable)
        # every row of the page is there, the bad one in its place, marked, with its op and why
        assert table.row_count == 137 and "rows 1-137 of 137" in text(app, "#status")
        cells = table.get_row_at(60)
        assert [str(c) for c in cells[:2]] == ["✗ 60", "aten.sum.dim_IntList"]
        assert all(isinstance(c, Text) for c in cells[:4])
        assert str(cells[3]).startswith("row does not decode: ") and "red" in str(cells[3].style)
        assert [str(c) for c in table.get_row_at(59)[:2]] == ["59", "t"]
        # a one-line notice over the table names the file, the row and what to do; no page-wide message
        notice = text(app, "#nodes-error")
        assert screen.query_one("#nodes-error").display and "cannot be read" not in notice
        assert notice.startswith("✗ 1 row of this page does not decode (step000000.rank0-of-1.sqlite, node 60: ")
        assert "the other rows show as usual" in notice and "Re-record the step, or delete the file" in notice
        # the good rows around it open: details, and the key 'b' breaks on
        assert "aten.t.default" in text(app, "#details")
        for good, op in ((59, "aten.t.default"), (61, "aten.view.default")):
            table.move_cursor(row=_row(table, good))
            await p.pause()
            details = text(app, "#details")
            assert f"#{good}" in details and op in details and "cannot be read" not in details
            assert screen.selected_node_key() == screen.data.node(good).key
        await p.press("b")
        assert "break on this node with" in _notes(app)[-1] and "aten.view.default#0" in _notes(app)[-1]
        # the bad row does not open: the details pane says why, 'b' says to pick another node
        table.move_cursor(row=_row(table, 60))
        await p.pause()
        details = text(app, "#details")
        assert "Node 60 cannot be read" in details and "node 60 does not decode" in details
        assert screen.selected_node_key() is None
        await p.press("b")
        assert _notes(app)[-1] == "node 60 does not decode: pick another node"
        # sorting and filtering keep the bad row marked in its new place, the others shown
        await p.press("o")
        await p.pause()
        assert "sorted by op asc" in text(app, "#status") and table.row_count == 137
        assert str(table.get_row_at(_row(table, 60))[0]) == "✗ 60"
        await p.press("slash", *"sum", "enter")
        await p.pause()
        assert table.row_count > 1 and "✗ 60" in {str(table.get_row_at(r)[0]) for r in range(table.row_count)}
        assert "1 row of this page does not decode" in text(app, "#nodes-error")
        await p.press("escape")
        await p.pause()
        assert table.row_count == 137
        assert not any("Traceback" in n for n in _notes(app))

    _drive(BrowseApp(str(run_dir), 0, 0), body)


def test_a_node_whose_forward_partner_does_not_decode_still_shows(tmp_path: Path) -> None:
    run_dir = _step_with_bad_rows(tmp_path, {5: "node_attrs", 60: "node_inputs"})

    async def body(p: Any, app: BrowseApp) -> None:
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        table = screen.query_one("#nodes", DataTable)
        assert table.row_count == 137
        assert text(app, "#nodes-error").startswith("✗ 2 rows of this page do not decode (")
        assert {str(table.get_row_at(r)[0]) for r in (5, 60)} == {"✗ 5", "✗ 60"}
        # node 46 (aten.mm, backward) reads; its forward partner, node 5, does not: said in its details
        table.move_cursor(row=_row(table, 46))
        await p.pause()
        details = text(app, "#details")
        assert "aten.mm.default" in details and "#46" in details and "cannot be read" not in details
        assert "forward partner  #5 does not decode (" in details
        assert screen.selected_node_key() == "net.2:backward:aten.mm.default#0"

    _drive(BrowseApp(str(run_dir), 0, 0), body)
