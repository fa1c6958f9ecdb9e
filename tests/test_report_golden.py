"""Behaviour pin: report, TensorBoard routes and terminal-UI queries on every example's stored steps
answer exactly what they answered before the read layer moved into ``gprof.store``.

The step files and goldens in tests/data/report_golden/ were made by its make_fixtures.py on the
code before that change; here the current code reads the same files and must answer the same JSON.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "data" / "report_golden"
RUNS = sorted(p.name for p in (GOLDEN / "logdir").iterdir() if p.is_dir())


def _fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("report_golden_fixtures", GOLDEN / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fixtures = _fixtures()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy, so reading never leaves journal files next to the goldens."""
    d = tmp_path_factory.mktemp("golden") / "logdir"
    shutil.copytree(GOLDEN / "logdir", d)
    return d


def test_every_example_is_pinned() -> None:
    assert set(RUNS) == {"cnn", "ddp", "dynamic", "mlp", "nan_example", "transformer"}


@pytest.mark.parametrize("run", RUNS)
def test_report_identical(run: str, logdir: Path) -> None:
    golden = fixtures.read_golden(GOLDEN / f"{run}.json.gz")
    assert fixtures.report_forms(logdir / run) == golden


@pytest.mark.parametrize("run", RUNS)
def test_tui_queries_identical(run: str, logdir: Path) -> None:
    golden = fixtures.read_golden(GOLDEN / f"{run}.tui.json.gz")
    now = fixtures.tui_views(logdir / run)
    assert now.keys() == golden.keys()
    for key in golden:
        assert now[key] == golden[key], key


def test_tb_routes_identical(logdir: Path) -> None:
    golden = fixtures.read_golden(GOLDEN / "tb_views.json.gz")
    now = fixtures.tb_views(logdir)
    assert now.keys() == golden.keys()
    assert now["runs"] == golden["runs"]
    for step in golden:
        if step == "runs":
            continue
        assert now[step].keys() == golden[step].keys(), step
        for view in golden[step]:
            assert now[step][view] == golden[step][view], (step, view)
