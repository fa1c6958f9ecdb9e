"""In-process tests of the gprof TensorBoard plugin's routes: TensorBoardWSGI + werkzeug's client.

The logdir holds a real recorded MLP run, a two-rank copy of it, a run with analysis results, and
runs whose files are truncated, corrupt, of another schema version or not SQLite at all.
"""
from __future__ import annotations

import json
import random
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.application import TensorBoardWSGI
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

import gprof
from gprof.store import find_runs, plugin_dir, step_filename, write_step
from gprof.store.queries import step_summary

ROOT = Path(__file__).resolve().parents[1]
BASE = "/data/plugin/gprof/"


def _record_mlp(logdir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from examples import mlp
        from examples._harness import train
    finally:
        sys.path.remove(str(ROOT))
    torch.manual_seed(0)
    with gprof.profile(logdir=logdir, run="mlp", analyze=False) as prof:
        train(lambda: mlp.make(steps=2), mlp.step, profile=prof)


def _copy_step(src: Path, logdir: Path, run: str, step: int, rank: int = 0, world: int = 1, **changes) -> Path:
    graph = gprof.load(src)
    graph.meta.rank, graph.meta.world_size, graph.meta.step = rank, world, step
    for k, v in changes.items():
        setattr(graph, k, v)
    return write_step(graph, plugin_dir(logdir, run) / step_filename(step, rank, world))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tblogs")
    _record_mlp(d)
    last = find_runs(d)["mlp"].files()[-1].path
    for rank in (0, 1):
        _copy_step(last, d, "ddp", 1, rank, 2)
    analyses = {
        "fusion": {"chains": [{"nodes": [1, 2], "ops": ["addmm", "relu"], "saving_ns": 1000,
                               "snippet": "torch.compile(model.net)"}]},
        "hazards": [{"key": "net.0:forward:aten.t.default#0", "kind": "item", "reason": "data-dependent"}],
        "compile_suggestions": {"suggestions": [{"module": "net", "nodes": [1], "code": "model.net = torch.compile(model.net)"}]},
        "op_classes": {"by_phase": {"forward": {"view": 3, "extern": 4}}, "unknown_ops": []},
    }
    _copy_step(last, d, "analysed", 1, analyses=analyses)
    for run, trace in (("kineto", "host_1.pt.trace.json"), ("kineto_escape", "../mlp/plugins/gprof/x.json")):
        graph = gprof.load(last)
        graph.meta.extra["kineto_trace"] = trace
        write_step(graph, plugin_dir(d, run) / step_filename(1))
    (d / "kineto" / "host_1.pt.trace.json").write_text('{"traceEvents": []}')
    bad = plugin_dir(d, "broken")
    bad.mkdir(parents=True)
    good = last.read_bytes()
    (bad / step_filename(0)).write_bytes(good[: len(good) // 2])  # truncated
    (bad / step_filename(1)).write_bytes(bytes(random.Random(0).randrange(256) for _ in range(8192)))  # corrupt
    foreign = bad / step_filename(2)
    shutil.copy(last, foreign)
    db = sqlite3.connect(foreign)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    (bad / step_filename(3)).write_text("not a database")
    return d


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    from gprof_tb.loader import GprofLoader

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(logdir), plugin_name_to_instance={}))
    return Client(TensorBoardWSGI([plugin]))


def get(client: Client, route: str, **params) -> tuple[int, object]:
    r = client.get(BASE + route, query_string=params)
    text = r.get_data(as_text=True)
    return r.status_code, (json.loads(text) if r.status_code == 200 and r.mimetype == "application/json" else text)


def _settled(client: Client, route: str, **params) -> dict:
    """Poll a route that answers ``pending`` while it computes in the background (bounded wait)."""
    for _ in range(600):
        status, body = get(client, route, **params)
        assert status == 200, body
        if not body.get("pending"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{route} still pending after 30 s")


def test_loader_module_imports_only_tensorboard() -> None:
    src = (ROOT / "tb_plugin" / "gprof_tb" / "loader.py").read_text()
    imports = [line.split()[1] for line in src.splitlines() if line.startswith(("import ", "from "))]
    assert all(m in ("__future__", "tensorboard.plugins") for m in imports), imports


def test_runs_lists_every_run(client: Client) -> None:
    status, runs = get(client, "runs")
    assert status == 200
    names = {r["run"]: r for r in runs}
    assert {"mlp", "ddp", "analysed", "broken"} <= set(names)
    assert names["ddp"]["ranks"] == [0, 1] and names["ddp"]["world_size"] == 2
    assert names["mlp"]["steps"] == [0, 1]


def test_step_summary_matches_report(client: Client, logdir: Path) -> None:
    status, s = get(client, "step", run="mlp", step=1)
    assert status == 200
    with find_runs(logdir)["mlp"].open(1) as r:
        expected = step_summary(r)
    assert s["nodes"] == expected["nodes"] and s["time_ns"] == expected["time_ns"]
    assert s["kineto_url"] is None


def test_collapsed_graph_starts_at_top_modules_and_expands(client: Client) -> None:
    status, g = get(client, "graph", run="mlp", phases="forward")
    assert status == 200
    assert {b["id"] for b in g["boxes"]} == {"m:net@forward", "m:loss_fn@forward"}
    assert [(e["src"], e["dst"]) for e in g["edges"]] == [("m:net@forward", "m:loss_fn@forward")]
    net = next(b for b in g["boxes"] if b["module"] == "net")
    status, g2 = get(client, "graph", run="mlp", phases="forward", expanded="net")
    children = [b for b in g2["boxes"] if b["parent"] == "net"]
    assert len(children) == 7 and sum(b["dur_ns"] for b in children) == net["dur_ns"]
    assert g2["clusters"] == ["net"]
    status, g3 = get(client, "graph", run="mlp", phases="forward", expanded="net,net.0")
    ops = [b for b in g3["boxes"] if b["kind"] == "node"]
    assert {b["op"] for b in ops} == {"aten.t.default", "aten.addmm.default"}
    # the addmm's output feeds net.1 (the ReLU): a node-to-group edge with the tensor's bytes
    addmm = next(b for b in ops if b["op"] == "aten.addmm.default")
    edge = next(e for e in g3["edges"] if e["src"] == addmm["id"])
    assert edge["dst"] == "m:net.1@forward" and edge["bytes"] == 64 * 512 * 4


def test_large_expanded_modules_show_one_box_per_op_type(client: Client) -> None:
    args = {"run": "mlp", "phases": "forward,backward", "expanded": "net,net.0,net.1"}
    _, one = get(client, "graph", **args)
    _status, g = get(client, "graph", **args, limit=2)  # net.0 and net.1 have more ops than that
    assert {b["id"] for b in g["boxes"] if b["parent"] == "net.0" and b["phase"] == "forward"} == {
        "o:net.0@forward@aten.addmm.default", "o:net.0@forward@aten.t.default"}
    assert sum(b["count"] for b in g["boxes"]) == sum(b["count"] for b in one["boxes"])
    edges = {(e["src"], e["dst"]): e for e in g["edges"]}
    # op-type box to op-type box, counted once, with the same bytes as node to node
    e = edges[("o:net.0@forward@aten.addmm.default", "o:net.1@forward@aten.relu.default")]
    node_edges = {(x["src"], x["dst"]): x["bytes"] for x in one["edges"] if x["kind"] == "data"}
    assert e["bytes"] == node_edges[("n:1", "n:2")] == 64 * 512 * 4 and e["count"] == 1
    # a tensor read by several ops of one op-type box counts once there, once per node box node by node
    assert 0 < sum(x["bytes"] for x in g["edges"] if x["kind"] == "data") <= sum(node_edges.values())
    assert edges[("o:net.1@forward@aten.relu.default", "m:net.2@forward")]["bytes"] == 64 * 512 * 4


def test_forward_and_backward_linked(client: Client) -> None:
    _status, g = get(client, "graph", run="mlp", phases="forward,backward", expanded="net,net.0")
    partner = [e for e in g["edges"] if e["kind"] == "partner"]
    assert ("m:loss_fn@backward", "m:loss_fn@forward") in {(e["src"], e["dst"]) for e in partner}
    node_links = [e for e in partner if e["src"].startswith("n:")]
    assert node_links and all(e["dst"].startswith("n:") for e in node_links)


def test_node_inspector(client: Client) -> None:
    status, n = get(client, "node", run="mlp", step=1, idx=1)
    assert status == 200
    assert n["op"] == "aten.addmm.default" and n["module"] == "net.0" and n["module_type"] == "Linear"
    assert n["outputs"][0]["shape"] == [64, 512] and n["flops"] == 2 * 64 * 256 * 512
    assert n["source"] and "mlp.py" in n["source"]
    assert any(p["phase"] == "backward" for p in n["backward_partners"])
    status, by_key = get(client, "node", run="mlp", step=1, key=n["key"])
    assert by_key["idx"] == 1


def test_op_table_matches_report(client: Client, logdir: Path) -> None:
    status, t = get(client, "ops", run="mlp", group="op", sort="host_self_ns", limit=5000)
    assert status == 200
    with find_runs(logdir)["mlp"].open() as r:
        top = step_summary(r, top=1000)["top_ops"]
    rows = {row["op"]: row for row in t["rows"]}
    for o in top:
        assert rows[o["op"]]["calls"] == o["count"] and rows[o["op"]]["host_self_ns"] == o["total_ns"]
    assert [r["host_self_ns"] for r in t["rows"]] == sorted((r["host_self_ns"] for r in t["rows"]), reverse=True)
    status, asc = get(client, "ops", run="mlp", group="op", sort="calls", order="asc")
    assert [r["calls"] for r in asc["rows"]] == sorted(r["calls"] for r in asc["rows"])
    shaped = _settled(client, "ops", run="mlp", group="op_shape")
    addmm = [r for r in shaped["rows"] if r["op"] == "aten.addmm.default"]
    assert {r["input_shapes"] for r in addmm} >= {"float32[512], float32[64,256], float32[256,512]"}
    assert sum(r["calls"] for r in addmm) == rows["aten.addmm.default"]["calls"]
    status, by_module = get(client, "ops", run="mlp", group="module")
    assert sum(r["calls"] for r in by_module["rows"]) == sum(r["calls"] for r in t["rows"])


def test_module_table_and_memory_curve(client: Client) -> None:
    _, mods = get(client, "modules", run="mlp")
    root = next(m for m in mods if m["module"] == "")
    assert root["type"] == "MLP" and root["forward_ns"] > 0 and root["backward_ns"] > 0
    assert root["saved_activation_bytes"] > 0
    _status, mem = get(client, "memory", run="mlp", points=20)
    assert 0 < len(mem["points"]) <= 20
    assert max(p[1] for p in mem["points"]) == mem["peak_bytes"]
    assert mem["by_category"]


def test_analyses_absent_and_present(client: Client) -> None:
    _, a = get(client, "analyses", run="mlp")
    assert all(not v["present"] for v in a.values())
    _, a = get(client, "analyses", run="analysed")
    chain = a["fusion"]["items"][0]
    assert chain["nodes"] == [1, 2] and chain["snippet"] == "torch.compile(model.net)"
    assert a["hazards"]["items"][0]["nodes"] == [0]  # resolved from its stable key
    assert a["compile_suggestions"]["items"][0]["snippet"].startswith("model.net")
    _, g = get(client, "graph", run="analysed", expanded="net,net.0")
    marked = {b["id"]: b["marks"] for b in g["boxes"] if b["marks"]}
    assert marked["n:1"] == {"chains": 1, "regions": 1} and marked["n:0"] == {"hazards": 1}
    assert marked["m:net.1@forward"] == {"chains": 1}
    _, g = get(client, "graph", run="analysed")
    assert {b["id"]: b["marks"] for b in g["boxes"]}["m:net@forward"] == {"chains": 2, "hazards": 1, "regions": 1}
    _, n = get(client, "node", run="analysed", idx=1)
    assert n["fusion_chains"][0]["number"] == 0 and n["compile_regions"]
    _status, n = get(client, "node", run="analysed", idx=4)  # in net.2: inside the suggested module "net"
    assert [r["number"] for r in n["compile_regions"]] == [0] and not n["fusion_chains"]
    assert a["op_classes"]["summary"] == {"by_phase.forward.view": 3, "by_phase.forward.extern": 4}


def test_step_diff_by_key(client: Client, logdir: Path) -> None:
    status, d = get(client, "diff", run="mlp", a=0, b=1)
    assert status == 200
    with find_runs(logdir)["mlp"].open(0) as r0, find_runs(logdir)["mlp"].open(1) as r1:
        k0 = {k for (k,) in r0.sql("SELECT key FROM nodes")}
        k1 = {k for (k,) in r1.sql("SELECT key FROM nodes")}
    assert d["added"] == len(k1 - k0) and d["removed"] == len(k0 - k1) and d["unchanged"] == len(k0 & k1)
    assert d["added"] + d["removed"] > 0  # the first step creates Adam's state


def test_kineto_trace_is_linked_and_served(client: Client) -> None:
    _, s = get(client, "step", run="kineto")
    assert s["kineto_url"] == "kineto?run=kineto&step=1&rank=0"
    r = client.get(BASE + s["kineto_url"])
    assert r.status_code == 200 and json.loads(r.get_data()) == {"traceEvents": []}
    _status, s = get(client, "step", run="kineto_escape")  # a name that leaves the run directory is ignored
    assert s["kineto_url"] is None and get(client, "kineto", run="kineto_escape")[0] == 404


def test_rank_comparison(client: Client) -> None:
    status, d = get(client, "ranks", run="ddp")
    assert status == 200 and [r["rank"] for r in d["ranks"]] == [0, 1]
    assert d["ranks"][0]["nodes"] == d["ranks"][1]["nodes"]
    status, _g = get(client, "graph", run="ddp", rank=1)
    assert status == 200


@pytest.mark.parametrize("params", [
    {"run": "../mlp"}, {"run": "/etc"}, {"run": "mlp/../../"}, {"run": "."}, {"run": "nope"},
])
def test_traversal_and_unknown_runs_are_404(client: Client, params: dict) -> None:
    status, text = get(client, "graph", **params)
    assert status == 404 and "unknown run" in text


@pytest.mark.parametrize("route,params,code,needle", [
    ("graph", {"run": "mlp", "step": 7}, 404, "no step 7"),
    ("graph", {"run": "mlp", "rank": 3}, 404, "no rank 3"),
    ("graph", {"run": "mlp", "step": "x"}, 400, "must be an integer"),
    ("graph", {"run": "mlp", "phases": "sideways"}, 400, "phases"),
    ("graph", {}, 400, "missing parameter 'run'"),
    ("node", {"run": "mlp", "idx": 10**9}, 404, "no node"),
    ("node", {"run": "mlp", "key": "x:y:z#0"}, 404, "no node with key"),
    ("node", {"run": "mlp"}, 400, "give 'idx'"),
    ("ops", {"run": "mlp", "group": "shape; DROP TABLE nodes"}, 400, "must be one of"),
    ("ops", {"run": "mlp", "sort": "idx"}, 400, "must be one of"),
    ("kineto", {"run": "mlp"}, 404, "with_kineto=True"),
    ("static/../plugin.py", {}, 404, "no static file"),
    ("static/%2e%2e/plugin.py", {}, 404, "no static file"),
])
def test_bad_parameters_get_readable_4xx(client: Client, route: str, params: dict, code: int, needle: str) -> None:
    status, text = get(client, route, **params)
    assert status == code and needle in text


@pytest.mark.parametrize("step,needle", [
    (0, "truncated or corrupt"), (1, "truncated or corrupt"), (2, "schema v99"), (3, "truncated or corrupt"),
])
def test_unreadable_files_get_422_and_others_keep_serving(client: Client, step: int, needle: str) -> None:
    for route in ("step", "graph", "ops", "memory", "node"):
        status, text = get(client, route, run="broken", step=step, idx=0)
        assert status == 422 and needle in text, (route, status, text)
    status, d = get(client, "graph", run="mlp")
    assert status == 200 and d["boxes"]


def test_failures_are_not_cached(client: Client, logdir: Path) -> None:
    """A file that is unreadable now and replaced atomically later is served once replaced."""
    run = "later"
    target = plugin_dir(logdir, run) / step_filename(0)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"half-written")
    import gprof_tb.plugin as plugin_mod

    plugin_mod._RUNS_TTL_S, saved = 0.0, plugin_mod._RUNS_TTL_S
    try:
        assert get(client, "graph", run=run)[0] == 422
        src = find_runs(logdir)["mlp"].files()[-1].path
        tmp = target.with_suffix(".tmp")
        shutil.copy(src, tmp)
        tmp.replace(target)
        assert get(client, "graph", run=run)[0] == 200
    finally:
        plugin_mod._RUNS_TTL_S = saved


NASTY = ["", "0", "1", "-1", "3", "99999999999999999999999", "1e3", "0x10", " 1", "a", "..", "../..", "/etc/passwd",
         "--1", "²", "١", "+1", "1_0", "mlp", "ddp", "broken", "analysed", "mlp/../broken", "%00", "\x00", "é", "😀",
         "net", "net,net.0", "-,net",
         "forward", "forward,backward", "all", "op", "op_shape", "module", "calls", "asc", "desc", "x" * 5000,
         "x" * 20000, "[]", "{}", "null", "'; DROP TABLE nodes; --", "net.0:forward:aten.t.default#0"]
ROUTES = ["runs", "step", "graph", "node", "ops", "modules", "memory", "analyses", "diff", "ranks", "kineto",
          "static/index.js", "static/nope", "static/../loader.py", "nope"]
PARAMS = ["run", "step", "rank", "idx", "key", "expanded", "phases", "group", "sort", "order", "limit", "points",
          "a", "b"]


def test_fuzz_never_5xx(client: Client) -> None:
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    for _ in range(1200):
        params = {p: rng.choice(NASTY) for p in rng.sample(PARAMS, rng.randint(0, 6))}
        if rng.random() < 0.7:
            params["run"] = rng.choice(["mlp", "ddp", "broken", "analysed", rng.choice(NASTY)])
        r = client.get(BASE + rng.choice(ROUTES), query_string=params)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (params, r.get_data(as_text=True)[:500])
        if r.status_code >= 400:
            assert r.get_data(as_text=True).strip(), params
    assert statuses.get(200, 0) > 100 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 100, statuses
    assert get(client, "graph", run="mlp")[0] == 200


def test_graph_same_before_and_after_the_op_tables(logdir: Path) -> None:
    """Large expanded modules read their ops through the indexes until the background op tables
    are ready, then from those tables; both give the same graph."""
    from gprof_tb.graphview import collapsed_graph
    from gprof_tb.stepdata import StepData

    data = StepData(find_runs(logdir)["mlp"].files()[-1].path)
    args = ({"net", "net.0", "net.1"}, {"forward", "backward", "optimizer"})

    def canonical(g: dict) -> tuple:
        return (sorted(map(json.dumps, g["boxes"])), sorted(map(json.dumps, g["edges"])))

    before = collapsed_graph(data, *args, limit=2)
    assert "op_edges" not in data._memo
    data.op_stats(), data.op_edges()
    after = collapsed_graph(data, *args, limit=2)
    assert canonical(before) == canonical(after) and any(b["kind"] == "ops" for b in after["boxes"])


def test_with_kineto_recording_links_a_real_trace(tmp_path: Path) -> None:
    """profile(with_kineto=True) writes torch.profiler's own Chrome trace per step next to the graph;
    the report names it and the tab serves it."""
    model = torch.nn.Linear(8, 4)
    with gprof.profile(logdir=tmp_path, run="kin", with_kineto=True, analyze=False) as prof:
        model(torch.randn(2, 8)).sum().backward()
        prof.step()
    trace = prof.graphs[0].meta.extra["kineto_trace"]
    assert trace.endswith(".pt.trace.json")
    events = json.loads((tmp_path / "kin" / trace).read_text())["traceEvents"]
    assert any(e.get("name") == "aten::addmm" for e in events)
    from gprof_tb.loader import GprofLoader

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(tmp_path), plugin_name_to_instance={}))
    c = Client(TensorBoardWSGI([plugin]))
    status, s = get(c, "step", run="kin")
    assert status == 200 and s["kineto_url"] == "kineto?run=kin&step=0&rank=0"
    r = c.get(BASE + s["kineto_url"])
    assert r.status_code == 200 and b"traceEvents" in r.data
