"""Exports: GraphDef + RunMetadata for TensorBoard's Graphs tab, and the Perfetto/Chrome trace."""
from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

import gprof
from gprof.cli import main as cli
from gprof.export.graphdef import build, node_name
from gprof.export.perfetto import export_trace
from gprof.store import find_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT))
    try:
        from examples import mlp
        from examples._harness import train
    finally:
        sys.path.remove(str(ROOT))
    d = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    with gprof.profile(logdir=d, run="mlp", analyze=False) as prof:
        train(lambda: mlp.make(steps=2), mlp.step, profile=prof)
    return d


def test_graphdef_scopes_inputs_and_step_stats(logdir: Path) -> None:
    with find_runs(logdir)["mlp"].open() as r:
        graph, meta = build(r)
        nodes = r.nodes()
        edges = r.edges()
    assert len(graph.node) == len(nodes)
    by_name = {n.name: n for n in graph.node}
    addmm = next(n for n in nodes if n.module == "net.0" and n.op == "aten.addmm.default")
    assert node_name(addmm) == f"net/0/addmm_{addmm.idx}"
    nd = by_name[node_name(addmm)]
    assert nd.op == "aten.addmm.default" and nd.attr["phase"].s == b"forward"
    assert [d.size for d in nd.attr["_output_shapes"].list.shape[0].dim] == [64, 512]
    consumer = next(e.dst for e in edges if e.src == addmm.idx)
    assert node_name(addmm) in by_name[node_name(nodes[consumer])].input
    assert next(n for n in nodes if n.module is None or n.phase == "optimizer")  # optimizer ops exist
    stats = {s.node_name: s for d in meta.step_stats.dev_stats for s in d.node_stats}
    assert set(stats) == set(by_name)
    st = stats[node_name(addmm)]
    assert st.all_end_rel_nanos == addmm.dur_ns and st.all_end_rel_micros == max(1, addmm.dur_ns // 1000)
    assert st.memory[0].total_bytes == addmm.alloc_bytes > 0
    assert st.output[0].tensor_description.allocation_description.requested_bytes == 64 * 512 * 4


def test_graphdef_phase_filter_and_size_guard(logdir: Path) -> None:
    with find_runs(logdir)["mlp"].open() as r:
        graph, _ = build(r, phases=("forward",))
        forward = r.sql("SELECT COUNT(*) FROM nodes WHERE phase = 'forward'")[0][0]
    assert len(graph.node) == forward
    assert cli(["export", str(logdir / "mlp"), "--format", "graphdef", "--max-nodes", "5"]) == 2
    assert cli(["export", str(logdir / "mlp"), "--format", "graphdef", "--phases", "sideways"]) == 2


def test_perfetto_trace(logdir: Path, tmp_path: Path) -> None:
    with find_runs(logdir)["mlp"].open() as r:
        path = export_trace(r, tmp_path / "t.json")
        nodes = r.nodes()
    trace = json.loads(path.read_text())
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == len(nodes)
    assert [e["args"]["key"] for e in complete] == [n.key for n in nodes]
    assert complete[5]["dur"] == nodes[5].dur_ns / 1000 and complete[0]["ts"] == 0
    assert {e["cat"] for e in complete} == {n.phase for n in nodes}
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    assert max(c["args"]["bytes"] for c in counters) == max(n.live_bytes for n in nodes)


@pytest.mark.slow
def test_tensorboard_graphs_tab_reads_the_export(logdir: Path, capsys: pytest.CaptureFixture) -> None:
    from tb_browser_helpers import tensorboard

    assert cli(["export", str(logdir / "mlp"), "--format", "graphdef", "--step", "1"]) == 0
    assert "Graphs tab" in capsys.readouterr().out
    with tensorboard(logdir) as url:
        info = json.load(urllib.request.urlopen(url + "/data/plugin/graphs/info", timeout=30))
        assert info["mlp"]["run_graph"] is True and info["mlp"]["tags"]["step1"]["profile"] is True
        graph = urllib.request.urlopen(url + "/data/plugin/graphs/graph?run=mlp&conceptual=false", timeout=30).read()
        assert b'name: "net/0/addmm_1"' in graph
        stats = urllib.request.urlopen(url + "/data/plugin/graphs/run_metadata?run=mlp&tag=step1", timeout=30).read()
        assert b'node_name: "net/0/addmm_1"' in stats and b"total_bytes: " in stats
