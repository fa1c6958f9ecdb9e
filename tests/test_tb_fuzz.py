"""Every route of the TensorBoard tab, with odd integers and every kind of corrupt step file
(tests/corrupt_steps.py), through the real TensorBoard WSGI app and werkzeug's client as
test_tb_routes.py does: no response is a 5xx, and one bad file never hides the rest of its run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from corrupt_steps import GOLDEN_LOGDIR, KINDS, READABLE, copy_step, corrupt
from tensorboard.backend.application import TensorBoardWSGI
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

BASE = "/data/plugin/gprof/"
GOLDEN_MLP = GOLDEN_LOGDIR / "mlp" / "plugins" / "gprof"
ODD_INTS = ["-1", "--1", "+1", "1e3", "²", "١", "٣", "99999999999999999999999", "9" * 5000, "", " 1", "1_0",
            "0x10", "1.0", "-0", "\u00a01", "１"]
INT_PARAMS = ["step", "rank", "idx", "limit", "points", "a", "b"]
#: (target, gpu) of the routes that show fusion or findings; every route gets them, most ignore them
ODD_TARGETS = [("cuda", ""), ("cpu", ""), ("", "H100"), ("cuda", "l4"), ("tpu", ""), ("CUDA", ""), ("cpu", "A100"),
               ("cuda", "Z80"), ("cuda", "../../etc/passwd"), ("cuda\x00", ""), ("c" * 20_000, ""), ("", "\u00a0"),
               ("cuda", "H100" * 3000), ("²", "١")]
BAD_RUNS = sorted(set(KINDS) - READABLE)


def _logdir(root: Path) -> Path:
    """``good``; one run per corrupt kind whose newest step (1) is corrupt and step 0 is fine; and a
    two-rank run whose rank 1 of step 1 is corrupt."""
    for run in ["good", *KINDS]:
        for step in (0, 1):
            f = copy_step(GOLDEN_MLP / f"step00000{step}.rank0-of-1.sqlite", root / run / "plugins" / "gprof", step)
            if step == 1 and run in KINDS:
                corrupt(f, run)
    for step in (0, 1):
        for rank in (0, 1):
            f = copy_step(GOLDEN_MLP / f"step00000{step}.rank0-of-1.sqlite", root / "ddp" / "plugins" / "gprof",
                          step, rank, 2)
    corrupt(f, "meta_list")
    return root


def _client(logdir: Path) -> tuple[Client, list[str]]:
    from gprof_tb.loader import GprofLoader

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(logdir), plugin_name_to_instance={}))
    routes = [r.lstrip("/").replace("*", "index.js") for r in plugin.get_plugin_apps()]
    return Client(TensorBoardWSGI([plugin])), routes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Client, list[str]]:
    return _client(_logdir(tmp_path_factory.mktemp("tbfuzz")))


def _get(client: Client, route: str, **params: str) -> tuple[int, str]:
    r = client.get(BASE + route, query_string=params)
    return r.status_code, r.get_data(as_text=True)


def test_first_runs_listing_flags_odd_newest_files(tmp_path: Path) -> None:
    """The first /runs after start-up (which prewarms each run's newest file) answers, lists every
    run and flags each unreadable file by step and rank."""
    client, _ = _client(_logdir(tmp_path))
    status, text = _get(client, "runs")
    assert status == 200, text
    runs = {r["run"]: r for r in json.loads(text)}
    assert set(runs) == {"good", "ddp", *KINDS}
    for kind in KINDS:
        assert runs[kind]["steps"] == [0, 1]
        header_bad = kind not in READABLE and not kind.startswith(("node_", "analysis_"))
        assert [(u["step"], u["rank"]) for u in runs[kind].get("unreadable", [])] == ([(1, 0)] if header_bad else [])
    assert [(u["step"], u["rank"]) for u in runs["ddp"]["unreadable"]] == [(1, 1)]
    assert "unreadable" not in runs["good"]


@pytest.mark.parametrize("kind", BAD_RUNS)
def test_every_route_on_a_corrupt_step_is_4xx_and_the_good_step_still_serves(served: tuple[Client, list[str]],
                                                                             kind: str) -> None:
    client, routes = served
    for route in routes:
        for params in ({}, {"step": "1", "idx": "0"}, {"step": "1", "key": "net.0:forward:aten.t.default#0"},
                       {"a": "0", "b": "1"}, {"a": "1", "b": "0", "group": "op_shape"}):
            status, text = _get(client, route, run=kind, **params)
            assert status < 500, (route, kind, params, text[:300])
            if status >= 400:
                assert text.strip(), (route, params)
    status, text = _get(client, "graph", run=kind, step="0")
    assert status == 200, text
    status, text = _get(client, "node", run=kind, step="1", idx="0")
    assert status in ((200,) if kind.startswith("analysis_") else (422,)), (status, text)
    if status == 422:
        assert "step000001" in text and "Re-record" in text


def test_odd_integers_on_every_route_never_5xx(served: tuple[Client, list[str]]) -> None:
    client, routes = served
    runs = ["good", "ddp", *BAD_RUNS]
    statuses: dict[int, int] = {}
    n = 0
    for route in routes:
        for param in INT_PARAMS:
            for i, value in enumerate(ODD_INTS):
                params = {"run": runs[(n + i) % len(runs)], param: value}
                if param in ("a", "b"):
                    params.setdefault("a" if param == "b" else "b", "0")
                status, text = _get(client, route, **params)
                n += 1
                statuses[status] = statuses.get(status, 0) + 1
                assert status < 500, (route, params, text[:300])
                if status >= 400:
                    assert text.strip(), (route, params)
    assert n == len(routes) * len(INT_PARAMS) * len(ODD_INTS) and statuses.get(400, 0) > 300, statuses
    assert statuses.get(200, 0) > 100 and not any(code >= 500 for code in statuses), statuses


@pytest.mark.parametrize("value", ["²", "١", "--1", "1e3"])
def test_unicode_and_malformed_step_numbers_are_400(served: tuple[Client, list[str]], value: str) -> None:
    client, _ = served
    for route in ("step", "graph", "node", "ops", "modules", "memory", "analyses", "ranks", "kineto"):
        status, text = _get(client, route, run="good", step=value, idx="0")
        assert status == 400 and "must be an integer" in text, (route, status, text)


def test_odd_fusion_targets_on_every_route_never_5xx(served: tuple[Client, list[str]]) -> None:
    """The fixture files predate stored op facts, so a valid target is a 422 there (or a re-target, where
    another test installed torch's facts in this process); a bad one a 400; never a 5xx."""
    client, routes = served
    runs = ["good", "ddp", *BAD_RUNS]
    statuses: dict[int, int] = {}
    for n, route in enumerate(routes):
        for i, (target, gpu) in enumerate(ODD_TARGETS):
            params = {"run": runs[(n + i) % len(runs)], "target": target, "gpu": gpu, "idx": "0"}
            status, text = _get(client, route, **params)
            statuses[status] = statuses.get(status, 0) + 1
            assert status < 500, (route, {k: v[:40] for k, v in params.items()}, text[:300])
            if status >= 400:
                assert text.strip(), (route, params)
    assert statuses.get(400, 0) >= 10 and statuses.get(200, 0) > 50, statuses
