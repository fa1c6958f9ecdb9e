"""Acceptance (issue 2, "Storage"): atomic per-step files, versioned schema with clear errors, a
reader that returns exactly what capture produced, stable node keys, module queries, run discovery."""
from __future__ import annotations

import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch import nn

import gprof
from gprof.graph.keys import format_key, parse_key
from gprof.store import StepReader, StepWriter, StoreError, UnknownRunError, find_runs, open_run, step_file
from gprof.store.runs import plugin_dir, step_filename
from gprof.store.step_file import write_step


def _first_file(run_dir: Path) -> Path:
    return open_run(run_dir).files()[0].path


def test_step_file_is_invisible_until_committed(tmp_path) -> None:
    final = tmp_path / "plugins" / "gprof" / step_filename(0)
    w = StepWriter(final)
    w.add_node_rows([])
    assert not final.exists(), "a half-written step is visible under its final name"
    with pytest.raises(StoreError):
        StepReader(final)
    temps = list(final.parent.iterdir())
    assert len(temps) == 1 and temps[0].name.startswith(".") and temps[0].name.endswith(".tmp")
    w.abort()
    assert not any(final.parent.iterdir()), "abort() left its temp file behind"


def test_steps_are_readable_while_training_goes_on(tmp_path) -> None:
    """While step 1 records, step 0's file is complete and readable and step 1's does not exist yet."""
    seen: list[tuple[list[int], int]] = []
    run_dir = tmp_path / "live"

    def peek(node, *_rest) -> None:
        if node.idx == 0 and not seen:
            run = open_run(run_dir)
            with run.open(0) as r:
                seen.append((run.steps(), r.count()))

    model = nn.Linear(4, 4)
    with gprof.profile(logdir=tmp_path, run="live") as prof:
        model(torch.randn(2, 4)).sum().backward()
        prof.step()
        prof.add_observer(peek)
        model(torch.randn(2, 4)).sum().backward()
    assert seen and seen[0][0] == [0] and seen[0][1] == prof.graphs[0].meta.node_count
    assert open_run(run_dir).steps() == [0, 1]
    assert not [p for p in plugin_dir(tmp_path, "live").iterdir() if p.name.endswith(".tmp")]


def _set_meta(path: Path, key: str, value: str) -> None:
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    db.commit()
    db.close()


@pytest.mark.parametrize("version, advice", [("99", "Upgrade"), ("0", "Re-record")])
def test_unknown_schema_version_is_a_clear_error(recorded_examples, tmp_path, version, advice) -> None:
    bad = tmp_path / "step.sqlite"
    shutil.copy(_first_file(recorded_examples["mlp"].run_dir), bad)
    _set_meta(bad, "schema_version", version)
    with pytest.raises(StoreError, match=rf"v{version}.*{advice}"):
        gprof.load(bad)


def test_truncated_corrupt_and_foreign_files_are_clear_errors(recorded_examples, tmp_path) -> None:
    good = _first_file(recorded_examples["mlp"].run_dir).read_bytes()
    cases = {
        "truncated": good[: len(good) // 3],
        "corrupt": good[:100] + bytes(range(256)) * 64,
        "text": b"hello, I am not a database\n" * 100,
        "empty": b"",
    }
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t(x)")
    db.commit()
    db.close()
    paths = [foreign]
    for name, data in cases.items():
        (tmp_path / f"{name}.sqlite").write_bytes(data)
        paths.append(tmp_path / f"{name}.sqlite")
    for p in paths:
        with pytest.raises(StoreError) as e:
            gprof.load(p)
        msg = str(e.value)
        assert str(p) in msg and ("torch-gprof" in msg or "corrupt" in msg), f"{p.name}: unclear message {msg!r}"


def test_load_returns_the_graph_capture_produced(recorded_examples) -> None:
    for name in ("mlp", "transformer"):
        rec = recorded_examples[name]
        files = open_run(rec.run_dir).files()
        for captured, f in zip(rec.graphs, files):
            loaded = gprof.load(f.path)
            assert asdict(loaded.meta) == asdict(captured.meta)
            assert asdict(loaded.memory) == asdict(captured.memory)
            assert len(loaded.nodes) == len(captured.nodes)
            for a, b in zip(captured.nodes, loaded.nodes):
                assert a == b, f"{name} step {f.step}: node {a.idx} differs after loading:\n{a}\n{b}"
            assert sorted(loaded.edges, key=lambda e: (e.dst, e.src, e.storage)) == \
                sorted(captured.edges, key=lambda e: (e.dst, e.src, e.storage))
            assert loaded.modules == captured.modules
            assert loaded.analyses == captured.analyses
            assert loaded.aggregates == captured.aggregates


def test_load_accepts_a_run_directory(recorded_examples) -> None:
    rec = recorded_examples["mlp"]
    last = gprof.load(rec.run_dir)
    assert last.meta.step == open_run(rec.run_dir).steps()[-1]
    assert gprof.load(rec.run_dir, step=1).meta.step == 1


def test_node_keys_are_stable_across_identical_steps(recorded_examples) -> None:
    for name in ("mlp", "cnn", "transformer"):
        g1, g2 = recorded_examples[name].graphs[1:3]
        assert [n.key for n in g1] == [n.key for n in g2], f"{name}: keys moved between steady steps"
        assert len({n.key for n in g1}) == len(g1.nodes), f"{name}: duplicate keys in one step"
    for n in recorded_examples["transformer"].graphs[1]:
        k = parse_key(n.key)
        assert (k.module, k.phase, k.op) == (n.module, n.phase, n.op)
        assert format_key(k.module, k.phase, k.op, k.occurrence) == n.key


def test_dynamic_graph_keys_identify_the_same_node(recorded_examples) -> None:
    graphs = recorded_examples["dynamic"].graphs[:3]
    assert len({len(g.nodes) for g in graphs}) > 1, "the dynamic example should change its graph"
    common = set.intersection(*({n.key for n in g} for g in graphs))
    # the embedding and head run once per step whatever the data: their keys exist in every step
    assert "embed:forward:aten.addmm.default#0" in common
    assert "head:backward:aten.mm.default#0" in common


def test_module_query_by_prefix(tmp_path) -> None:
    model = nn.ModuleDict({"enc": nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "encoder": nn.Linear(4, 4)})
    x = torch.randn(2, 4)
    with gprof.profile(logdir=tmp_path, run="prefix"):
        model["encoder"](model["enc"](x)).sum().backward()
    with open_run(tmp_path / "prefix").open() as r:
        enc = r.module_nodes("enc")
        assert enc and {n.module for n in enc} == {"enc.0", "enc.1"}
        assert not r.module_nodes("enc", recursive=False), "enc itself runs no op of its own"
        assert {n.module for n in r.module_nodes("encoder")} == {"encoder"}
        assert {n.module for n in r.module_nodes("enc.0")} == {"enc.0"}
        one = enc[0]
        assert r.node(one.idx) == one and r.node_by_key(one.key) == one


def test_node_and_module_queries_use_indexes(recorded_examples, tmp_path, monkeypatch) -> None:
    """One node or one module's nodes come out of a big step without scanning it: SQLite's own query
    plan must search an index, never scan the nodes table (a step under PRECOMPUTE_MIN_NODES is
    written without indexes: scanning it takes microseconds, and it is written sooner)."""
    with StepReader(_first_file(recorded_examples["transformer"].run_dir)) as small:
        graph = small.load()
    monkeypatch.setattr(step_file, "PRECOMPUTE_MIN_NODES", 0)
    with StepReader(write_step(graph, tmp_path / "big.sqlite")) as r:
        plans = {
            "node": r.sql("EXPLAIN QUERY PLAN SELECT * FROM nodes WHERE idx = ?", (5,)),
            "key": r.sql("EXPLAIN QUERY PLAN SELECT * FROM nodes WHERE key = ?", ("x",)),
            "module": r.sql("EXPLAIN QUERY PLAN SELECT * FROM nodes WHERE module = ? OR (module >= ? AND module < ?) "
                            "ORDER BY idx",
                            ("encoder", "encoder.", "encoder/")),
            "edges": r.sql("EXPLAIN QUERY PLAN SELECT * FROM edges WHERE src = ? OR dst = ?", (5, 5)),
        }
    for what, rows in plans.items():
        detail = " | ".join(str(row[-1]) for row in rows)
        assert "SEARCH" in detail and "SCAN" not in detail, f"{what} query scans the table: {detail}"


def test_run_discovery(tmp_path) -> None:
    for run in ("a", "group/b"):
        with gprof.profile(logdir=tmp_path, run=run):
            torch.ones(3).add(1)
    (tmp_path / "not-a-run" / "plugins").mkdir(parents=True)
    runs = find_runs(tmp_path)
    assert list(runs) == ["a", "group/b"]
    assert runs["group/b"].steps() == [0] and runs["group/b"].ranks() == [0]
    assert open_run(tmp_path, "group/b").path == tmp_path / "group" / "b"
    assert open_run(tmp_path / "a").name == "a"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "a")).Reload()
    assert "gprof/step" in events.PluginTagToContent("gprof"), "no tfevents marker tagged for the plugin"


@pytest.mark.parametrize("name", ["../a", "/etc", "group/../../a", "a/../a", "", ".."])
def test_path_tricks_in_run_names_are_rejected(tmp_path, name) -> None:
    logdir = tmp_path / "logs"
    with gprof.profile(logdir=logdir, run="a"):
        torch.ones(3).add(1)
    (tmp_path / "plugins" / "gprof").mkdir(parents=True)  # a "run" just outside the logdir
    with pytest.raises(UnknownRunError, match="unknown run"):
        open_run(logdir, name)


@pytest.mark.parametrize("name", ["../evil", "{tmp}/evil", "a/../../evil"])
def test_profile_rejects_run_names_that_escape_the_logdir(tmp_path, name) -> None:
    """See /tmp/h6_findings.md F5."""
    logdir = tmp_path / "logs"
    with pytest.raises(ValueError, match="run"), gprof.profile(logdir=logdir, run=name.format(tmp=tmp_path)):
        torch.ones(3).add(1)
    assert not (tmp_path / "evil").exists(), "a step was written outside the logdir"


def test_aggregates_read_the_same_as_tables_or_as_views(recorded_examples, tmp_path, monkeypatch) -> None:
    """A step of PRECOMPUTE_MIN_NODES nodes or more has its aggregate tables written with it; a
    smaller one, and a file written before they existed, gets them as views when opened: every
    reader queries one set of names, and the rows are the same either way."""
    with StepReader(_first_file(recorded_examples["transformer"].run_dir)) as r:
        graph = r.load()
    assert graph.meta.node_count < step_file.PRECOMPUTE_MIN_NODES
    small = write_step(graph, tmp_path / "small.sqlite")
    monkeypatch.setattr(step_file, "PRECOMPUTE_MIN_NODES", 0)
    tables = write_step(graph, tmp_path / "tables.sqlite")
    old = tmp_path / "old.sqlite"
    shutil.copy(tables, old)
    with sqlite3.connect(old) as db:
        db.execute("DROP TABLE agg_op_stats")
        db.execute("DROP TABLE agg_op_edges")
    names = ("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('agg_op_stats', 'agg_op_edges', "
             "'agg_module_edges') ORDER BY 1")
    queries = ["SELECT * FROM agg_op_stats ORDER BY 1, 2, 3", "SELECT * FROM agg_op_edges ORDER BY 1, 2, 3, 4, 5, 6",
               "SELECT * FROM agg_module_edges ORDER BY 1, 2, 3, 4"]
    with StepReader(tables) as t, StepReader(small) as s, StepReader(old) as o:
        assert [n for (n,) in t.sql(names)] == sorted(step_file.AGGREGATE_QUERIES)
        assert s.sql(names) == [] and [n for (n,) in o.sql(names)] == ["agg_module_edges"]
        for q in queries:
            rows = t.sql(q)
            assert rows and s.sql(q) == rows and o.sql(q) == rows
        assert s.op_facts() == t.op_facts() and s.op_facts()
