"""The tab's fusion target selector on the server (issue 16): the routes that show fusion or findings
(/analyses, /overview, /graph marks, /node chains) take ``target`` and ``gpu`` and answer with the step's
analyses re-targeted from the stored graph (``gprof.store.queries.retarget.analyses_for``); a bad value is
a 400 naming the known ones, and a file that cannot be re-targeted without torch a 422 that says why."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_RUN = ROOT / "tests" / "data" / "report_golden" / "logdir" / "transformer"  # written before op facts


@pytest.fixture(scope="module")
def get(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """GET a route of a plugin over the transformer example recorded now (in a child process, so this one
    installs no torch op facts) and ``old``, a copy of a step written before op facts were stored."""
    from gprof_tb.loader import GprofLoader
    from tensorboard.backend.application import TensorBoardWSGI
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    d = tmp_path_factory.mktemp("targets")
    subprocess.run([sys.executable, str(ROOT / "examples" / "transformer.py"), "--logdir", str(d), "--no-report"],
                   check=True, cwd=ROOT, timeout=300, capture_output=True)
    shutil.copytree(OLD_RUN, d / "old")
    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(d), plugin_name_to_instance={}))
    client = Client(TensorBoardWSGI([plugin]))

    def fetch(route: str, **params: object) -> tuple[int, Any]:
        r = client.get("/data/plugin/gprof/" + route, query_string=params)
        text = r.get_data(as_text=True)
        return r.status_code, json.loads(text) if r.status_code == 200 else text
    return fetch


def _ok(get: Any, route: str, **params: object) -> Any:
    status, body = get(route, run="transformer", **params)
    assert status == 200, body
    return body


def test_step_lists_the_choices(get: Any) -> None:
    t = _ok(get, "step")["fusion_targets"]
    assert t["recorded"] == "cpu" and t["retargetable"] and t["targets"] == ["cpu", "cuda"] and "H100" in t["gpus"]
    assert get("step", run="old")[1]["fusion_targets"]["retargetable"] is False


def test_cuda_changes_findings_marks_and_chains(get: Any) -> None:
    recorded, cuda = _ok(get, "analyses"), _ok(get, "analyses", target="cuda")
    assert recorded["fusion"]["summary"]["target"] == "cpu" and cuda["fusion"]["summary"]["target"] == "cuda"
    assert len(cuda["fusion"]["items"]) != len(recorded["fusion"]["items"])
    first = {k: [(f["kind"], f["saving"]) for f in _ok(get, "overview", **q)["findings"]]
             for k, q in (("recorded", {}), ("cuda", {"target": "cuda"}), ("l4", {"target": "cuda", "gpu": "L4"}))}
    assert first["cuda"] != first["recorded"] and first["l4"] != first["cuda"]  # priced per GPU
    assert _ok(get, "overview", target="cpu")["findings"] == _ok(get, "overview")["findings"]  # recorded on cpu

    def marks(**q: object) -> int:
        g = _ok(get, "graph", expanded="encoder,encoder.layers,encoder.layers.0", phases="forward", **q)
        return sum(b["marks"].get("chains", 0) for b in g["boxes"])
    assert marks() != marks(target="cuda")
    chain = next(f for f in _ok(get, "overview", target="cuda")["findings"] if f["kind"] == "unfused_chain")
    cuda_chains = _ok(get, "node", idx=chain["nodes"][0], target="cuda")["fusion_chains"]
    assert chain["id"] in [f"unfused_chain:{c['number']}" for c in cuda_chains]
    assert cuda_chains != _ok(get, "node", idx=chain["nodes"][0])["fusion_chains"]


@pytest.mark.parametrize(("params", "said"), [
    ({"target": "tpu"}, "unknown fusion target 'tpu'"),
    ({"target": "cuda", "gpu": "Z80"}, "unknown GPU 'Z80'"),
    ({"target": "cpu", "gpu": "A100"}, "applies to the cuda target only"),
])
def test_bad_target_or_gpu_is_400(get: Any, params: dict[str, str], said: str) -> None:
    for route in ("analyses", "overview", "graph", "node"):
        status, text = get(route, run="transformer", idx=0, **params)
        assert status == 400 and said in text, (route, status, text)


def test_file_without_op_facts_is_a_clear_422(get: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gprof.analyses import opclass

    monkeypatch.setattr(opclass, "has_torch_facts", lambda: False)  # as in the tab's torch-free process
    for route in ("analyses", "overview", "graph", "node"):
        status, text = get(route, run="old", idx=0, target="cuda")
        assert status == 422 and "before torch-gprof stored its op facts" in text, (route, status, text)
    assert get("analyses", run="old")[0] == 200  # the recorded analyses need no re-target
