"""The tab's views in a real browser, on the committed example steps (tests/data/report_golden/logdir:
transformer, dynamic, and the 2-rank ddp run): every view renders without page errors and reads as
units and names (no raw field names, no unit-less numbers); search finds, reveals and highlights a node;
a reload restores view, selection and expansions; view ops are wired to their consumers; a merged edge
counts each tensor once.

One TensorBoard server and one browser for the whole module. Needs Chromium and playwright, like
tests/test_tb_browser.py.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tb_browser_helpers import (
    BROWSER_NAMES,
    chromium_page,
    find_browser,
    open_tab,
    plugin_frame,
    tensorboard,
    unreadable,
)

GOLDEN = Path(__file__).parent / "data" / "report_golden" / "logdir"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_browser() is None, reason=f"no browser on PATH (looked for {', '.join(BROWSER_NAMES)})"),
]
playwright = pytest.importorskip("playwright", reason="the playwright package drives the browser")

# each view's button and an element that says it has drawn
VIEWS = {"overview": "#findings", "graph": "#graph-box svg", "timeline": "#timeline g rect", "ops": "#op-table",
         "modules": "#module-table", "memory": "#memory-ops-table", "findings": "#analysis-fusion", "diff": "#diff-summary",
         "ranks": "#rank-bars"}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("views") / "logdir"
    for run in ("transformer", "dynamic", "ddp"):
        shutil.copytree(GOLDEN / run, d / run)
    return d


@pytest.fixture(scope="module")
def browser(logdir: Path) -> Iterator[tuple[Any, str, list[str]]]:
    """(page, TensorBoard URL, page errors so far) shared by the module's tests."""
    with tensorboard(logdir) as url, chromium_page() as (page, _requests):
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page, url, errors


def _sql(logdir: Path, run: str, query: str, step: int = 1, rank: int = 0, world: int = 1) -> list[tuple]:
    path = logdir / run / "plugins" / "gprof" / f"step{step:06d}.rank{rank}-of-{world}.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(query).fetchall()


def _visit_every_view(frame: Any) -> dict[str, list[str]]:
    bad = {}
    for view, ready in VIEWS.items():
        frame.click(f"button.tab[data-tab='{view}']")
        frame.wait_for_selector(ready)
        frame.wait_for_timeout(300)  # late parts of a view (by-operator table, inspector) settle
        found = unreadable(frame.inner_text("body"))
        if found:
            bad[view] = found
    return bad


@pytest.mark.parametrize(("run", "rank"), [("transformer", 0), ("dynamic", 0), ("ddp", 1)])
def test_every_view_reads_well(browser: tuple[Any, str, list[str]], run: str, rank: int) -> None:
    page, url, errors = browser
    before = len(errors)
    frame = open_tab(page, url, f"run={run}&rank={rank}")
    assert frame.eval_on_selector("#sel-run", "s => s.value") == run
    assert _visit_every_view(frame) == {}
    assert errors[before:] == []


def test_ranks_shares_straggler_and_links(browser: tuple[Any, str, list[str]]) -> None:
    """Per-rank compute/communication/wait bars, the straggler, and a link that switches rank and node."""
    page, url, _ = browser
    frame = open_tab(page, url, "view=ranks&run=ddp")
    frame.wait_for_selector("#rank-bars")
    heads = frame.eval_on_selector_all("#rank-table thead th", "ths => ths.map(t => t.textContent)")
    assert heads == ["metric", "rank 0", "rank 1"]
    bars = frame.inner_text("#rank-bars")
    assert "compute" in bars and "wait" in bars and "(straggler)" in bars and "%" in bars
    assert "straggler: rank" in frame.inner_text("#straggler")
    assert "same collectives in the same order" in frame.inner_text("#mismatches")
    straggler = int(frame.inner_text("#straggler").split("straggler: rank ")[1].split(",")[0])
    frame.click("#straggler a")
    frame.wait_for_selector("g.node.selected")
    assert frame.eval_on_selector("#sel-rank", "s => s.value") == str(straggler)
    assert "rank=" + str(straggler) in frame.evaluate("location.hash")


def test_overview_findings_numbered_as_the_report(browser: tuple[Any, str, list[str]], logdir: Path) -> None:
    """The overview's findings carry the report's numbers, and a card's link moves the graph to its node."""
    from gprof.report import format_step
    from gprof.store import StepReader
    from gprof.store.queries import step_summary

    page, url, _ = browser
    with StepReader(logdir / "transformer" / "plugins" / "gprof" / "step000001.rank0-of-1.sqlite") as r:
        text = format_step(step_summary(r))
    report = [line.split(". ", 1)[1].split(" [")[0] for line in text.splitlines()
              if line.startswith("     ") and line.strip()[:2].rstrip(".").isdigit()]
    frame = open_tab(page, url, "run=transformer")
    titles = frame.eval_on_selector_all("#findings .card .title", "ts => ts.map(t => t.textContent)")
    numbers = frame.eval_on_selector_all("#findings .card .num", "ns => ns.map(n => n.textContent)")
    assert numbers == [f"{i}." for i in range(1, len(numbers) + 1)]
    assert titles == report[:len(titles)]
    assert "orange border" in frame.inner_text("#marking")
    frame.click("#findings .card[data-kind='unfused_chain'] a")
    frame.wait_for_selector("g.node.selected")


def test_diff_shows_shape_changes_first(browser: tuple[Any, str, list[str]]) -> None:
    page, url, _ = browser
    frame = open_tab(page, url, "view=diff&run=dynamic")
    frame.wait_for_selector("#diff-shapes")
    assert frame.eval_on_selector("#diff-base", "s => s.value") == "0"  # the previous step by default
    assert "changed shape, dtype or device" in frame.inner_text("#diff-summary")
    first = frame.eval_on_selector("h3", "h => h.textContent")
    assert first.startswith("shape, dtype and device changes")
    frame.select_option("#diff-base", "1")  # the step against itself: an empty diff says so
    frame.wait_for_selector("#diff-summary:has-text('no difference')")


def test_timeline_zoom_and_inspect(browser: tuple[Any, str, list[str]]) -> None:
    """Nodes per lane by phase; zooming in re-queries the window; clicking a node inspects it."""
    page, url, _ = browser
    frame = open_tab(page, url, "view=timeline&run=transformer")
    frame.wait_for_selector("#timeline rect.tl-node")
    lanes = frame.eval_on_selector_all("#timeline > text", "ts => ts.map(t => t.textContent)")
    assert lanes == ["thread 0"]
    fills = set(frame.eval_on_selector_all("#timeline rect.tl-node", "rs => rs.map(r => r.getAttribute('fill'))"))
    assert len(fills) >= 3  # forward, backward, optimizer
    before = frame.inner_text("#timeline-info")
    frame.click("#tl-zoom-in")
    frame.click("#tl-zoom-in")
    frame.wait_for_function("t => document.getElementById('timeline-info').textContent !== t", arg=before)
    assert " shown of " in frame.inner_text("#timeline-info")
    frame.locator("#timeline rect.tl-node").first.click()
    frame.wait_for_selector("#insp-op")
    frame.click("#inspector a:text('show in graph')")
    frame.wait_for_selector("g.node.selected")


def test_timeline_buckets_on_many_nodes(browser: tuple[Any, str, list[str]]) -> None:
    """Past the item cap the route answers buckets; clicking one zooms into it until nodes show."""
    page, url, _ = browser
    frame = open_tab(page, url, "view=timeline&run=transformer")
    frame.wait_for_selector("#timeline rect.tl-node")
    data = frame.evaluate("fetch('./timeline?run=transformer&max=20').then(r => r.json())")
    assert data["mode"] == "buckets" and len(data["items"]) <= 20 * len(data["lanes"])


def test_search_reveals_highlights_and_reload_restores(browser: tuple[Any, str, list[str]], logdir: Path) -> None:
    page, url, _ = browser
    (idx,) = _sql(logdir, "transformer", "SELECT idx FROM nodes WHERE op = 'aten.addmm.default' "
                  "AND module = 'encoder.layers.0.linear1' AND phase = 'forward'")[0]
    frame = open_tab(page, url, "view=graph&run=transformer")
    assert frame.locator("g.cluster").count() == 0  # opens collapsed
    frame.fill("#graph-search", "linear1")
    frame.wait_for_selector("#search-results li")
    frame.fill("#graph-search", "encoder.layers.0.linear1:forward:aten.addmm")
    frame.wait_for_selector("#search-results li:has-text('addmm')")
    frame.press("#graph-search", "Enter")
    frame.wait_for_selector(f"g.node.selected[data-box='n:{idx}']")  # revealed: its modules expanded
    assert frame.locator(f"g.node.hit[data-box='n:{idx}']").count() == 1
    frame.wait_for_selector("#insp-op")
    assert frame.inner_text("#insp-op") == "aten.addmm.default"
    assert [c.strip() for c in frame.inner_text("#crumbs").split("›")] == ["model", "encoder", "layers", "0", "linear1"]
    # the node is on screen, inside the graph's box
    box = frame.eval_on_selector("#graph-box", "e => e.getBoundingClientRect().toJSON()")
    node = frame.eval_on_selector(f"g.node[data-box='n:{idx}']", "e => e.getBoundingClientRect().toJSON()")
    assert box["left"] <= node["left"] and node["right"] <= box["right"]
    assert box["top"] <= node["top"] and node["bottom"] <= box["bottom"]
    # a producer link moves the selection and the graph
    frame.click("#insp-table tr:has(th:text('producers')) a")
    frame.wait_for_selector(f"g.node.selected:not([data-box='n:{idx}'])")
    selected = frame.eval_on_selector("g.node.selected", "e => e.dataset.box")
    # reload the frame: same view, selection and expansions
    frame.evaluate("location.reload()")
    frame = plugin_frame(page)
    frame.wait_for_selector("g.node.selected")
    assert frame.eval_on_selector("g.node.selected", "e => e.dataset.box") == selected
    assert frame.locator("g.cluster[data-cluster='encoder.layers.0.linear1']").count() == 1
    # reload the whole TensorBoard page: the saved state comes back too
    page.reload()
    frame = plugin_frame(page)
    frame.wait_for_selector("g.node.selected")
    assert frame.eval_on_selector("g.node.selected", "e => e.dataset.box") == selected
    assert frame.eval_on_selector("button.tab.active", "b => b.dataset.tab") == "graph"


def test_expand_keeps_the_module_in_place(browser: tuple[Any, str, list[str]]) -> None:
    page, url, _ = browser
    frame = open_tab(page, url, "view=graph&run=transformer")
    before = frame.eval_on_selector("g.node[data-box='m:encoder@forward']", "e => e.getBoundingClientRect().toJSON()")
    frame.click("g.node[data-box='m:encoder@forward']")
    frame.wait_for_selector("g.cluster[data-cluster='encoder']")
    after = frame.eval_on_selector("g.cluster[data-cluster='encoder']", "e => e.getBoundingClientRect().toJSON()")
    assert abs(after["left"] - before["left"]) < 3 and abs(after["top"] - before["top"]) < 3
    # zoom and fit change the viewport, not the layout
    vb = frame.eval_on_selector("#graph-box svg", "s => s.getAttribute('viewBox')")
    frame.click("#zoom-in")
    assert frame.eval_on_selector("#graph-box svg", "s => s.getAttribute('viewBox')") != vb
    frame.click("#fit")
    tooltip = frame.eval_on_selector("g.node[data-box='m:head@forward'] > title", "t => t.textContent")
    assert tooltip.startswith("head : Linear (forward)")


def test_module_rows_go_to_the_graph(browser: tuple[Any, str, list[str]]) -> None:
    page, url, _ = browser
    frame = open_tab(page, url, "view=modules&run=transformer")
    frame.wait_for_selector("#module-table")
    names = frame.eval_on_selector_all("#module-table td[data-col='module']", "tds => tds.map(t => t.dataset.raw)")
    assert names[:2] == ["", "encoder"]  # the root first, then its children; deeper rows closed
    frame.click("#module-table tr:has(td[data-raw='encoder']) .tree-toggle")
    frame.wait_for_selector("#module-table td[data-raw='encoder.layers']")
    frame.click("#module-table th[data-col='forward_ns']")
    frame.click("#module-table tr:has(td[data-raw='encoder.layers']) td[data-col='type']")
    frame.wait_for_selector("g.node.hit[data-box='m:encoder.layers@forward']")
    assert frame.eval_on_selector("button.tab.active", "b => b.dataset.tab") == "graph"


def test_view_op_has_consumers(browser: tuple[Any, str, list[str]], logdir: Path) -> None:
    """issue 14: a view op is wired to the op that made the view, and its output to the ops that read it
    (node 15 of the transformer example, a view inside self-attention, once showed no consumers)."""
    page, url, _ = browser
    (op,) = _sql(logdir, "transformer", "SELECT op FROM nodes WHERE idx = 15")[0]
    assert op == "aten.view.default"
    frame = open_tab(page, url, "view=graph&run=transformer&node=15")
    frame.wait_for_selector("#insp-op")
    consumers = frame.locator("#insp-table tr:has(th:text('consumers')) a")
    assert consumers.count() >= 1


def test_merged_edge_counts_each_tensor_once(browser: tuple[Any, str, list[str]], logdir: Path) -> None:
    """issue 14: encoder → head carries one 1 MiB tensor read by two ops of head; the merged edge says 1 MiB."""
    page, url, _ = browser
    rows = _sql(logdir, "transformer", "SELECT DISTINCT e.src, e.storage, e.nbytes FROM edges e "
                "JOIN nodes a ON a.idx = e.src JOIN nodes b ON b.idx = e.dst WHERE a.module LIKE 'encoder%' "
                "AND b.module = 'head' AND a.phase = 'forward' AND b.phase = 'forward'")
    expected = sum(r[2] for r in rows)
    frame = open_tab(page, url, "view=graph&run=transformer")
    label = frame.text_content("g.edge[data-src='m:encoder@forward'][data-dst='m:head@forward'] text")
    assert label == f"{expected / 2**20:.2f} MiB"


def test_graph_wires_views_to_their_consumers(browser: tuple[Any, str, list[str]]) -> None:
    """Expanded, the view op (node 15) is drawn with an edge to the op that reads it."""
    page, url, _ = browser
    frame = open_tab(page, url, "view=graph&run=transformer&node=15&exp=encoder,encoder.layers,encoder.layers.0,"
                     "encoder.layers.0.self_attn")
    frame.wait_for_selector("g.node.selected[data-box='n:15']")
    assert frame.locator("g.edge[data-src='n:15']").count() >= 1


def test_screenshots(browser: tuple[Any, str, list[str]], tmp_path: Path) -> None:
    """The overview, the graph and the timeline as the docs show them; GPROF_UPDATE_SCREENSHOTS=1
    refreshes docs/images/tb_overview.png, tb_graph.png and tb_timeline.png."""
    out = Path(__file__).parents[1] / "docs" / "images" if os.environ.get("GPROF_UPDATE_SCREENSHOTS") == "1" else tmp_path
    page, url, _ = browser
    open_tab(page, url, "run=transformer")
    page.screenshot(path=str(out / "tb_overview.png"))
    frame = open_tab(page, url, "view=graph&run=transformer&node=60&exp=encoder,encoder.layers,encoder.layers.0,"
                     "encoder.layers.0.linear1")
    frame.wait_for_selector("g.node.selected[data-box='n:60']")
    page.screenshot(path=str(out / "tb_graph.png"))
    frame = open_tab(page, url, "view=timeline&run=transformer&node=60")
    frame.wait_for_selector("#timeline rect.tl-node")
    frame.click("#tl-zoom-in")
    frame.wait_for_timeout(600)  # the zoomed window's answer
    page.screenshot(path=str(out / "tb_timeline.png"))
