"""The analyses end to end: recorded with a real step, stored with the run, shown by
``torch-gprof report`` (text and JSON); and the roofline calibration cache."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import gprof
from gprof.analyses import roofline
from gprof.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(roofline, "_memo", {})
    return tmp_path / "xdg" / "torch-gprof"


@pytest.fixture()
def dynamic_run(tmp_path, cache):
    sys.path.insert(0, str(ROOT))
    try:
        from examples import dynamic
    finally:
        sys.path.remove(str(ROOT))
    model, opt, batches = dynamic.make(steps=1)
    with gprof.profile(logdir=tmp_path / "runs", run="dyn") as prof:
        dynamic.step(model, opt, batches[0])
    return prof


def test_report_json_has_every_analysis(dynamic_run, capsys):
    assert cli(["report", str(dynamic_run.run_dir), "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    f = step["fusion"]
    assert f["predicted_kernels"]["forward"] > 0 and f["predicted_kernels"]["backward"] > 0
    assert f["chains"], "the dynamic example has unfused chains"
    for c in f["chains"]:
        assert c["eager_kernels"] >= 2 and c["fused_kernels"] == 1 and c["launches_saved"] == c["eager_kernels"] - 1
        assert {"nodes", "ops", "module", "intermediate_bytes", "est_time_saved_ns"} <= set(c)
    kinds = {(h["kind"], h["source"].split(" ")[0]) for h in step["hazards"]}
    assert ("data_dependent", "examples/dynamic.py:34") in kinds  # .item() driving the loop
    assert ("dynamic_shape", "examples/dynamic.py:38") in kinds  # h[keep]
    (s, *_) = step["compile_suggestions"]
    assert s["module"] == "refine" and s["snippet"] == "model.refine.compile()" and s["est_time_saved_ns"] > 0
    assert s["hazards_avoided"]
    assert step["op_classes"]["unknown_ops"] == []


def test_report_text_shows_the_analyses(dynamic_run, capsys):
    assert cli(["report", str(dynamic_run.run_dir)]) == 0
    out = capsys.readouterr().out
    for needle in ("fusion (what torch.compile", "unfused chains", "hazards (", "model.refine.compile()",
                   "op classes"):
        assert needle in out


def test_analyses_are_in_memory_too(dynamic_run):
    g = dynamic_run.graphs[-1]
    assert {"fusion", "hazards", "compile_suggestions", "op_classes"} <= set(g.analyses)


def test_roofline_is_measured_once_and_cached(cache):
    first = roofline.load_or_measure("cpu")
    (path,) = cache.glob("roofline-*.json")
    assert first.bandwidth_bps > 0 and first.launch_ns > 0
    data = json.loads(path.read_text())
    data["launch_ns"] = 12345.0
    path.write_text(json.dumps(data))
    assert roofline.load_or_measure("cpu").launch_ns == 12345.0  # read back, not re-measured


def test_corrupt_roofline_cache_is_remeasured(cache):
    roofline.load_or_measure("cpu")
    (path,) = cache.glob("roofline-*.json")
    path.write_text("{not json")
    assert roofline.load_or_measure("cpu").bandwidth_bps > 0
    assert json.loads(path.read_text())["bandwidth_bps"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to calibrate one")
def test_cuda_roofline_uses_that_device(cache):
    r = roofline.load_or_measure("cuda:0")
    assert r.device.startswith("cuda-") and r.bandwidth_bps > 0
