"""End to end: a real ``tensorboard`` process, the example transformer run, headless Debian Chromium.

Needs a Chromium on PATH (``chromium``, ``chromium-browser`` or ``google-chrome``) and the ``playwright``
package; both are part of the test environment (scripts/test.sh installs Debian's chromium).
The docs' screenshots are made by tests/test_tb_views.py::test_screenshots.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tb_browser_helpers import BROWSER_NAMES, chromium_page, find_browser, plugin_frame, tensorboard

from gprof.store import find_runs
from gprof.store.queries import step_summary

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_browser() is None, reason=f"no browser on PATH (looked for {', '.join(BROWSER_NAMES)})"),
]
playwright = pytest.importorskip("playwright", reason="the playwright package drives the browser")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tbrun")
    subprocess.run([sys.executable, str(ROOT / "examples" / "transformer.py"), "--logdir", str(d), "--no-report"],
                   check=True, cwd=ROOT, timeout=300, capture_output=True)
    return d


def _box(frame, box_id: str):
    return frame.locator(f"g.node[data-box='{box_id}']")


def test_tab_expand_inspect_op_table_offline(logdir: Path) -> None:
    with find_runs(logdir)["transformer"].open() as r:
        summary = step_summary(r, top=1000)
        head_addmm = r.sql("SELECT idx FROM nodes WHERE module = 'head' AND phase = 'forward' "
                           "AND op = 'aten.addmm.default'")[0][0]
        node = r.node(head_addmm)
    with tensorboard(logdir) as url:
        listing = json.load(urllib.request.urlopen(url + "/data/plugins_listing", timeout=30))
        assert listing["gprof"]["enabled"] is True  # the tab appears by itself
        with chromium_page() as (page, requests):
            page.goto(url + "/#gprof")
            frame = plugin_frame(page)
            # lands on the overview; the graph opens collapsed at the top of the module hierarchy
            assert frame.eval_on_selector("button.tab.active", "b => b.dataset.tab") == "overview"
            frame.click("button.tab[data-tab='graph']")
            frame.wait_for_selector("g.node[data-box='m:encoder@forward']")
            assert _box(frame, "m:encoder@forward").count() == 1
            assert _box(frame, "m:encoder.layers@forward").count() == 0
            # expand a module, then a leaf module, and click one of its ops
            _box(frame, "m:encoder@forward").click()
            frame.wait_for_selector("g.cluster[data-cluster='encoder']")
            assert _box(frame, "m:encoder.layers@forward").count() == 1
            _box(frame, "m:head@forward").click()
            frame.wait_for_selector(f"g.node[data-box='n:{head_addmm}']")
            _box(frame, f"n:{head_addmm}").click()
            frame.wait_for_selector("#insp-op")
            text = frame.inner_text("#inspector")
            assert frame.inner_text("#insp-op") == "aten.addmm.default"
            assert node.key in text and "head : Linear" in text
            assert f"float32[{','.join(map(str, node.outputs[0].shape))}]" in text
            assert f"{node.flops / 1e6:.2f} MFLOP" in text and (node.source or "") in text
            assert "#" in text.split("backward partners")[1]  # linked to its backward ops
            # show forward and backward together; colour by memory
            frame.select_option("#sel-phases", "forward+backward")
            frame.wait_for_selector("g.node[data-box='m:encoder.layers@backward']")
            frame.select_option("#sel-color", "memory")
            # the op table against the report's numbers
            frame.click("button.tab[data-tab='ops']")
            frame.wait_for_selector("#op-table")
            rows = frame.eval_on_selector_all("#op-table tbody tr", """trs => trs.map(tr => Object.fromEntries(
                [...tr.querySelectorAll('td')].map(td => [td.dataset.col, td.dataset.raw])))""")
            table = {r["op"]: r for r in rows}
            assert len(table) == len(summary["top_ops"])
            for op in summary["top_ops"]:
                assert int(table[op["op"]]["calls"]) == op["count"]
                assert int(table[op["op"]]["host_self_ns"]) == op["total_ns"]
            host = [int(r["host_self_ns"]) for r in rows]
            assert host == sorted(host, reverse=True)
            frame.click("#op-table th[data-col='calls']")
            frame.wait_for_selector("#op-table th.sorted[data-col='calls']")
            # the other views render
            for tab, selector in (("modules", "#module-table"), ("memory", "#memory-curve"),
                                  ("findings", "#analysis-fusion"), ("diff", "#diff-summary"), ("ranks", "#rank-table")):
                frame.click(f"button.tab[data-tab='{tab}']")
                frame.wait_for_selector(selector)
            with find_runs(logdir)["transformer"].open() as r:
                r_analyses = r.analyses()
            snippets = [s["snippet"] for s in r_analyses.get("compile_suggestions") or [] if isinstance(s, dict)
                        and s.get("snippet")]
            if snippets:  # the analyses engineer's compile suggestions carry code to copy
                frame.click("button.tab[data-tab='findings']")
                frame.wait_for_selector("#analysis-compile_suggestions button.copy")
                assert snippets[0] in frame.inner_text("#analysis-compile_suggestions")
                frame.click("#analysis-compile_suggestions button.copy")
                frame.wait_for_selector("#analysis-compile_suggestions button.copy:text('copied')")
            frame.click("button.tab[data-tab='memory']")
            # the curve is stacked by category: the ones alive at the step's peak are drawn
            with find_runs(logdir)["transformer"].open() as r:
                peak_categories = set(r.memory.by_category)
            frame.wait_for_selector("#memory-curve polygon.cat-area")
            drawn = set(frame.eval_on_selector_all(
                "#memory-curve polygon.cat-area", "els => els.map(e => e.getAttribute('class').split('cat-')[2])"))
            assert peak_categories <= drawn, (peak_categories, drawn)
            frame.click("#memory-curve", position={"x": 300, "y": 120})
            frame.wait_for_selector("#insp-op")
        origins = {urlsplit(u).netloc for u in requests if not u.startswith(("data:", "blob:", "about:"))}
        assert origins == {urlsplit(url).netloc}, origins


def test_path_prefix_and_slow_loading(logdir: Path) -> None:
    with tensorboard(logdir, "--path_prefix", "/tb", "--load_fast=false") as url:
        assert url.endswith("/tb"), url  # TensorBoard prints the prefixed address
        with chromium_page() as (page, requests):
            page.goto(url + "/#gprof")
            frame = plugin_frame(page)
            frame.click("button.tab[data-tab='graph']")
            frame.wait_for_selector("g.node[data-box='m:encoder@forward']")
            base = url.removesuffix("/tb")
            plugin_requests = [u for u in requests if "/data/plugin/gprof/" in u]
            assert plugin_requests and all(u.startswith(base + "/tb/") for u in plugin_requests)


def test_fusion_target_selector_changes_findings_and_survives_reload(logdir: Path) -> None:
    """issue 16: 'fusion for' cuda re-targets the overview's findings (the example was recorded on cpu);
    the choice is in the frame's URL, so a reload shows the cuda findings again."""
    def findings(frame) -> list[str]:
        frame.wait_for_selector("#findings .card.finding")
        return frame.locator("#findings .card.finding").all_inner_texts()

    with tensorboard(logdir) as url, chromium_page() as (page, _):
        page.goto(url + "/#gprof")
        frame = plugin_frame(page)
        assert frame.eval_on_selector("#sel-target", "s => s.value") == ""  # as recorded
        assert frame.locator("#sel-gpu").is_hidden()
        recorded = findings(frame)
        frame.select_option("#sel-target", "cuda")
        frame.wait_for_function("() => location.hash.includes('target=cuda')")
        frame.wait_for_function("t => document.querySelector('#findings .card.finding')?.innerText !== t",
                                arg=recorded[0])
        cuda = findings(frame)
        assert cuda != recorded and frame.locator("#sel-gpu").is_visible()
        page.reload()
        frame = plugin_frame(page)
        assert frame.eval_on_selector("#sel-target", "s => s.value") == "cuda"
        assert findings(frame) == cuda
