"""issue 14's data side on the committed example steps (tests/data/report_golden/logdir): views wired
to the op that made them, merged edges counting each tensor once, the shape-aware diff, the overview's
ranking and units, ranks on the 2-rank DDP run, memory by operator, the timeline's level of detail."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "data" / "report_golden" / "logdir"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("insight") / "logdir"
    shutil.copytree(GOLDEN, d)
    return d


@pytest.fixture(scope="module")
def get(logdir: Path) -> Any:
    from gprof_tb.loader import GprofLoader
    from tensorboard.backend.application import TensorBoardWSGI
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(logdir), plugin_name_to_instance={}))
    client = Client(TensorBoardWSGI([plugin]))

    def fetch(route: str, **params: object) -> Any:
        r = client.get("/data/plugin/gprof/" + route, query_string=params)
        assert r.status_code == 200, r.get_data(as_text=True)
        return json.loads(r.get_data(as_text=True))
    return fetch


def _sql(logdir: Path, run: str, query: str) -> list[tuple]:
    path = sorted((logdir / run / "plugins" / "gprof").glob("*.sqlite"))[-1]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(query).fetchall()


def test_view_is_wired_to_the_op_that_made_it(get: Any) -> None:
    """Node 15 (q.view in self-attention) reads select 12 and is read by transpose 16; the clone that
    wrote the storage hands its readers to the views (select 12, 13, 14 of q, k, v)."""
    view = get("node", run="transformer", idx=15)
    assert view["op"] == "aten.view.default"
    assert [p["idx"] for p in view["producers"]] == [12]
    assert [c["idx"] for c in view["consumers"]] == [16]
    assert [c["idx"] for c in get("node", run="transformer", idx=17)["producers"]] == [13]  # k, not q
    assert [c["idx"] for c in get("node", run="transformer", idx=11)["consumers"]] == [12, 13, 14]


def test_merged_edge_counts_each_tensor_once(get: Any, logdir: Path) -> None:
    rows = _sql(logdir, "transformer", "SELECT DISTINCT e.src, e.storage, e.nbytes FROM edges e "
                "JOIN nodes a ON a.idx = e.src JOIN nodes b ON b.idx = e.dst WHERE a.module LIKE 'encoder%' "
                "AND b.module = 'head' AND a.phase = 'forward' AND b.phase = 'forward'")
    n_edges = _sql(logdir, "transformer", "SELECT COUNT(*) FROM edges e JOIN nodes a ON a.idx = e.src "
                   "JOIN nodes b ON b.idx = e.dst WHERE a.module LIKE 'encoder%' AND b.module = 'head' "
                   "AND a.phase = 'forward' AND b.phase = 'forward'")[0][0]
    assert n_edges > len(rows)  # one tensor read by several ops of head
    graph = get("graph", run="transformer")
    (edge,) = [e for e in graph["edges"] if e["src"] == "m:encoder@forward" and e["dst"] == "m:head@forward"]
    assert edge["bytes"] == sum(r[2] for r in rows)


def test_diff_reports_shape_changes_first(get: Any) -> None:
    """examples/dynamic.py changes its sequence length every step: the same keys, new shapes."""
    d = get("diff", run="dynamic")  # base: the previous step
    assert (d["base"], d["step"]) == (0, 1)
    assert not d["empty"] and d["shape_changes_total"] > 0
    first = d["shape_changes"][0]
    assert first["key"] == "embed:forward:aten.view.default#0" and "input shape" in first["what"]
    assert (first["inputs_before"], first["inputs_after"]) == ("float32[4,12,16]@cpu", "float32[4,20,16]@cpu")
    same = get("diff", run="dynamic", step=1, base=1)
    assert same["empty"] and same["message"].startswith("no difference")


def test_overview_ranks_findings_by_saving(get: Any) -> None:
    o = get("overview", run="transformer")
    found = o["findings"]
    assert [f["number"] for f in found] == list(range(1, len(found) + 1))
    savings = [f["saving_ns"] for f in found]
    assert savings == sorted(savings, reverse=True)
    assert found[0]["title"] == "compile the whole model" and found[0]["module_label"] == "(root)"
    optimizer = [f for f in found if f["phase"] == "optimizer"]
    assert optimizer and all(f["module"] is None and "optimizer" in f["module_label"] for f in optimizer)
    chains = [f for f in found if f["kind"] == "unfused_chain"]
    assert all(isinstance(f["node"], int) and f["source"] for f in chains)
    assert {p["name"] for p in o["time"]["by_phase"]} == {"forward", "backward", "optimizer", "other"}
    assert abs(sum(p["share"] for p in o["time"]["by_op_class"]) - 1) < 1e-3
    assert [t["step"] for t in o["trend"]] == [0, 1] and all(t["wall_ns"] > 0 for t in o["trend"])
    assert o["marking"]["marked"] <= o["marking"]["chains"]


def test_graph_marks_only_chains_that_matter(get: Any) -> None:
    o = get("overview", run="transformer")
    graph = get("graph", run="transformer", phases="forward,backward,optimizer,other")
    marked = sum(b["marks"].get("chains", 0) for b in graph["boxes"])
    all_chain_nodes = sum(len(f["nodes"]) for f in o["findings"] if f["kind"] == "unfused_chain")
    assert 0 < marked < all_chain_nodes


def test_ranks_on_ddp(get: Any) -> None:
    d = get("ranks", run="ddp")
    assert [r["rank"] for r in d["ranks"]] == [0, 1]
    for r in d["ranks"]:
        assert 0 <= r["compute_share"] <= 1 and 0 <= r["comm_share"] <= 1 and 0 <= r["wait_share"] <= 1
    assert d["straggler"] in (0, 1) and d["skew"]["lag_ns"] >= 0
    assert d["mismatches"] == []


def test_memory_ops_over_a_range(get: Any) -> None:
    d = get("memory_ops", run="transformer", **{"from": 0, "to": 100})
    assert d["rows"] and d["rows"][0]["alloc_bytes"] >= d["rows"][-1]["alloc_bytes"]
    assert 0 <= d["peak_node"] <= 100
    assert get("memory_ops", run="transformer", start=0, end=100) == d


def test_timeline_nodes_and_buckets(get: Any) -> None:
    t = get("timeline", run="transformer")
    assert t["mode"] == "nodes" and t["count"] == len(t["items"]) == 324 and t["lanes"] == ["thread 0"]
    b = get("timeline", run="transformer", max=10)
    assert b["mode"] == "buckets" and len(b["items"]) <= 10 * len(b["lanes"])
    assert sum(i[3] for i in b["items"]) == 324


def test_optimizer_alternatives_are_one_finding() -> None:
    """fused, foreach and compiling opt.step are alternatives: one finding with the best saving (the
    step's findings would otherwise add up three savings of which only one can be had), the others named
    in its detail, and the report says to pick one."""
    from gprof.analyses.optimizer import format_text
    from gprof.store.queries.findings import step_findings

    advice = [{"name": "Adam.step (for-loop)", "ops": 120, "time_ns": 900_000, "modules": ["0"], "advice": [
        {"kind": "compile", "ops_after": 2, "est_time_saved_ns": 200_000, "code": "opt_step()"},
        {"kind": "fused", "ops_after": 2, "est_time_saved_ns": 210_000, "code": "fused=True"},
        {"kind": "foreach", "ops_after": 30, "est_time_saved_ns": 160_000, "code": "foreach=True"}]}]
    found = step_findings({"optimizer_advice": advice}, step_ns=10_000_000)
    [opt] = [f for f in found if f["kind"] == "optimizer"]
    assert opt["title"] == "Adam.step (for-loop): use fused" and opt["saving_ns"] == 210_000
    assert opt["snippet"] == "fused=True" and "or compile (~" in opt["detail"] and "or foreach (~" in opt["detail"]
    assert "one of (savings do not add up)" in format_text({"optimizer_advice": advice})[0]
