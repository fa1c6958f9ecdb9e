"""Issue 12, items 12 and 3: a profile refuses clearly what it cannot do (re-entry, options of the
wrong type, a logdir that is a file), and the TensorBoard tab serves no file from outside its run
directory, however a symlink in the logdir points."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import seeded_net
from tensorboard.backend.application import TensorBoardWSGI
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

import gprof
from gprof.graph.model import StepGraph, StepMeta
from gprof.store import open_run, plugin_dir, step_filename, write_step

BASE = "/data/plugin/gprof/"


def test_entering_a_profile_twice_is_refused(tmp_path: Path) -> None:
    model, x = seeded_net()
    p = gprof.profile(tmp_path, "twice", worker=False)
    with p:
        with pytest.raises(RuntimeError, match="already active"), p:
            pass
        model(x).sum().backward()
    (graph,) = p.graphs
    keys = [n.key for n in graph.nodes]
    assert len(keys) == len(set(keys)), "each op recorded once"


@pytest.mark.parametrize(("kwargs", "error", "text"), [
    ({"run": 123}, TypeError, "run must be a str"),
    ({"node_cap": "5"}, TypeError, "node_cap must be an int"),
    ({"node_cap": 2.5}, TypeError, "node_cap must be an int"),
    ({"node_cap": True}, TypeError, "node_cap must be an int"),
    ({"node_cap": 0}, ValueError, "node_cap must be at least 1"),
    ({"tensor_preview": 5000}, ValueError, "between 0 and 4096"),
    ({"keep_in_memory": None}, TypeError, "keep_in_memory must be an int"),
    ({"rank": "0"}, TypeError, "rank must be an int"),
])
def test_bad_options_are_refused_clearly(tmp_path: Path, kwargs: dict, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        gprof.profile(tmp_path, **{"run": "r", **kwargs})


def test_a_logdir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        gprof.profile(f, "r")
    with pytest.raises(TypeError, match="logdir must be a path"):
        gprof.profile(3, "r")  # type: ignore[arg-type]


@pytest.fixture
def linked_logdir(tmp_path: Path) -> Path:
    """A logdir whose runs hold symlinks to a secret outside it: a step file and a Kineto trace."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.json"
    secret.write_text('{"secret": 1}')
    logdir = tmp_path / "logdir"
    graph = StepGraph(meta=StepMeta(run="r", step=0, extra={"kineto_trace": "trace.json"}))
    write_step(graph, plugin_dir(logdir, "r") / step_filename(0))
    (logdir / "r" / "trace.json").symlink_to(secret)
    foreign = outside / "foreign.sqlite"  # a whole step, readable, but not in the run
    write_step(StepGraph(meta=StepMeta(run="other", step=7)), foreign)
    (plugin_dir(logdir, "r") / step_filename(7)).symlink_to(foreign)
    return logdir


def test_the_tab_serves_nothing_outside_the_run(linked_logdir: Path) -> None:
    from gprof_tb.loader import GprofLoader

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(linked_logdir), plugin_name_to_instance={}))
    client = Client(TensorBoardWSGI([plugin]))
    runs = json.loads(client.get(BASE + "runs").get_data(as_text=True))
    assert [r["steps"] for r in runs if r["run"] == "r"] == [[0]]
    assert client.get(BASE + "step", query_string={"run": "r", "step": 7}).status_code == 404
    step = json.loads(client.get(BASE + "step", query_string={"run": "r"}).get_data(as_text=True))
    assert step["kineto_url"] is None
    r = client.get(BASE + "kineto", query_string={"run": "r", "step": 0})
    assert r.status_code == 404 and "secret" not in r.get_data(as_text=True)
    assert open_run(linked_logdir / "r").steps() == [0]


def test_a_symlink_inside_the_run_still_serves(tmp_path: Path) -> None:
    """Links that stay inside the run directory are fine (a trace moved and linked back)."""
    logdir = tmp_path / "logdir"
    write_step(StepGraph(meta=StepMeta(run="r", step=0, extra={"kineto_trace": "trace.json"})),
               plugin_dir(logdir, "r") / step_filename(0))
    (logdir / "r" / "traces").mkdir()
    (logdir / "r" / "traces" / "t.json").write_text('{"traceEvents": []}')
    (logdir / "r" / "trace.json").symlink_to(logdir / "r" / "traces" / "t.json")
    from gprof_tb.loader import GprofLoader

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(logdir), plugin_name_to_instance={}))
    r = Client(TensorBoardWSGI([plugin])).get(BASE + "kineto", query_string={"run": "r", "step": 0})
    assert r.status_code == 200 and json.loads(r.get_data(as_text=True)) == {"traceEvents": []}
