"""Readers survive bad files (issue 12, items 7-9): every way a step file can fail to decode is one
CorruptStepError naming the file; the report, the terminal UI's start-up and the cross-rank section
skip or flag that file and show the rest. The TensorBoard routes' side is in test_tb_fuzz.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from corrupt_steps import GOLDEN_LOGDIR, KINDS, READABLE, copy_step, corrupt, corrupt_node

from gprof.cli import main
from gprof.store import StepReader, open_run
from gprof.store.decode import CorruptStepError, integer
from gprof.store.queries import (
    NodeQuery,
    UndecodedNode,
    analyses_view,
    node_page,
    node_page_rows,
    op_table,
    step_summary,
)

GOLDEN_MLP = GOLDEN_LOGDIR / "mlp" / "plugins" / "gprof" / "step000001.rank0-of-1.sqlite"
#: corruption inside node rows: the file opens, reading those nodes fails
NODE_KINDS = {"node_inputs", "node_attrs"}
#: corruption of stored analysis results: the file reads, the analysis reads as failed
ANALYSIS_KINDS = {"analysis_bad_json", "analysis_odd_shape"}
HEADER_KINDS = set(KINDS) - READABLE - NODE_KINDS - ANALYSIS_KINDS


def _run(tmp_path: Path, steps: int = 4, bad: dict[int, str] | None = None) -> Path:
    """A run of ``steps`` copies of a golden MLP step; ``bad`` maps a step to its corruption kind."""
    run_dir = tmp_path / "mlp"
    for s in range(steps):
        f = copy_step(GOLDEN_MLP, run_dir / "plugins" / "gprof", s)
        if bad and s in bad:
            corrupt(f, bad[s])
    return run_dir


@pytest.mark.parametrize("kind", sorted(HEADER_KINDS))
def test_header_corruption_is_one_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    f = corrupt(copy_step(GOLDEN_MLP, tmp_path, 0), kind)
    with pytest.raises(CorruptStepError) as e:
        StepReader(f)
    assert e.value.path == f and str(f) in str(e.value) and "Re-record" in str(e.value)


def test_unknown_meta_fields_are_ignored_missing_ones_named(tmp_path: Path) -> None:
    f = corrupt(copy_step(GOLDEN_MLP, tmp_path, 2), "meta_extra_field")
    with StepReader(f) as r:
        assert r.meta.step == 2 and r.meta.partial is False and r.count() > 0
    g = corrupt(copy_step(GOLDEN_MLP, tmp_path, 3), "meta_missing_field")
    with pytest.raises(CorruptStepError, match="meta lacks the field step"):
        StepReader(g)


@pytest.mark.parametrize("kind", sorted(NODE_KINDS))
def test_node_corruption_is_one_error(tmp_path: Path, kind: str) -> None:
    f = corrupt(copy_step(GOLDEN_MLP, tmp_path, 0), kind)
    with StepReader(f) as r:
        for read in (lambda: r.node(0), lambda: node_page(r, NodeQuery(), 10), lambda: step_summary(r)):
            with pytest.raises(CorruptStepError, match=r"node \d+ does not decode"):
                read()
        if kind == "node_inputs":
            with pytest.raises(CorruptStepError, match="inputs"):
                op_table(r, "op_shape")


@pytest.mark.parametrize("kind", sorted(NODE_KINDS))
def test_a_bad_node_row_costs_only_itself_on_a_page_read_row_by_row(tmp_path: Path, kind: str) -> None:
    f = corrupt_node(copy_step(GOLDEN_MLP, tmp_path, 0), 60, kind)
    with StepReader(f) as r:
        rows = node_page_rows(r, NodeQuery(), 200)
        with pytest.raises(CorruptStepError, match="node 60 does not decode"):
            node_page(r, NodeQuery(), 200)
        good = node_page(r, NodeQuery(offset=61), 200)
    assert [n.idx for n in rows] == list(range(137))
    bad = rows[60]
    assert isinstance(bad, UndecodedNode) and (bad.idx, bad.op) == (60, "aten.sum.dim_IntList")
    assert bad.error.path == f and "node 60 does not decode" in str(bad.error)
    assert bad.reason and "does not decode" not in bad.reason and str(f) not in bad.reason
    assert not any(isinstance(n, UndecodedNode) for n in rows[:60] + rows[61:])
    assert [n.key for n in rows[61:]] == [n.key for n in good]


@pytest.mark.parametrize("kind", sorted(ANALYSIS_KINDS))
def test_bad_analysis_results_read_as_failed_analyses(tmp_path: Path, kind: str) -> None:
    f = corrupt(copy_step(GOLDEN_MLP, tmp_path, 0), kind)
    with StepReader(f) as r:
        view = analyses_view(r)
        s = step_summary(r)
    assert set(view) == {"fusion", "hazards", "compile_suggestions", "op_classes"}
    if kind == "analysis_bad_json":
        assert "not valid JSON" in s["fusion"]["error"] and str(f) in view["fusion"]["error"]


@pytest.mark.parametrize("kind", sorted(set(KINDS) - READABLE))
@pytest.mark.parametrize("as_json", [True, False])
def test_report_of_every_step_skips_the_bad_one(tmp_path: Path, capsys: pytest.CaptureFixture, kind: str,
                                                as_json: bool) -> None:
    """One corrupt step of four: the other three are reported, the bad one named, no traceback."""
    run_dir = _run(tmp_path, bad={1: kind})
    rc = main(["report", str(run_dir), "--all-steps"] + (["--json"] if as_json else []))
    out, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in out + err
    if kind in ANALYSIS_KINDS:  # the step itself still reads; its analyses say what is wrong
        assert "skipped" not in err
        return
    assert "skipped step 1 rank 0" in err and "step000001" in err
    if as_json:
        report = json.loads(out)
        assert [s["step"] for s in report["steps"]] == [0, 2, 3]
        assert [(s["step"], s["file"].endswith("step000001.rank0-of-1.sqlite")) for s in report["skipped"]] == [(1, True)]
    else:
        assert out.count("== step") == 3


@pytest.mark.parametrize("kind", sorted(HEADER_KINDS | NODE_KINDS))
def test_default_text_report_falls_back_to_the_newest_readable_step(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                     kind: str) -> None:
    run_dir = _run(tmp_path, bad={3: kind})
    rc = main(["report", str(run_dir)])
    out, err = capsys.readouterr()
    assert rc == 0 and "== step 2 " in out and "skipped step 3 rank 0" in err and "Traceback" not in out + err


def test_report_with_no_readable_step_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = _run(tmp_path, 2, bad={0: "meta_list", 1: "node_inputs"})
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "skipped step 1" in err and "skipped step 0" in err and "no readable step" in err


def test_asking_for_the_bad_step_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = _run(tmp_path, bad={1: "memory_null"})
    assert main(["report", str(run_dir), "--step", "1"]) == 2
    err = capsys.readouterr().err
    assert "memory is a JSON null" in err and "step000001" in err and "Traceback" not in err


def test_bad_rank_file_does_not_break_another_ranks_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = GOLDEN_LOGDIR / "ddp" / "plugins" / "gprof"
    data = tmp_path / "ddp" / "plugins" / "gprof"
    for f in src.iterdir():
        copy_step(f, data, int(f.name[4:10]), int(f.name.split("rank")[1].split("-")[0]), 2)
    corrupt(data / "step000001.rank1-of-2.sqlite", "meta_list")
    assert main(["report", str(tmp_path / "ddp"), "--step", "1", "--rank", "0", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert [(s["step"], s["rank"]) for s in report["steps"]] == [(1, 0)]
    assert [(s["step"], s["rank"]) for s in report["skipped"]] == [(1, 1)]
    assert report["cross_rank"]["steps"][0]["unreadable_ranks"][0]["rank"] == 1
    assert "skipped step 1 rank 1" in err
    assert main(["report", str(tmp_path / "ddp"), "--step", "1", "--rank", "0"]) == 0
    assert "rank 1 skipped: " in capsys.readouterr().out


@pytest.mark.parametrize("text", ["--1", "²", "١", "1e3", " 1", "1_0", "", "+", "9" * 20])
def test_integers_are_parsed_strictly(text: str) -> None:
    with pytest.raises(ValueError):
        integer(text)


def test_integers_take_ascii_digits_and_a_sign() -> None:
    assert [integer(t) for t in ("0", "7", "-1", "+3", "9" * 19)] == [0, 7, -1, 3, int("9" * 19)]


@pytest.mark.parametrize("step", ["²", "--1", "١"])
def test_cli_refuses_odd_step_numbers(tmp_path: Path, capsys: pytest.CaptureFixture, step: str) -> None:
    for cmd in ("report", "tui"):
        with pytest.raises(SystemExit) as e:
            main([cmd, str(_run(tmp_path, 1)), f"--step={step}"])
        assert e.value.code == 2 and "invalid integer value" in capsys.readouterr().err


class _FakeApp:
    """Stands in for the Textual app: records which step the command would open."""

    opened: list[tuple] = []

    def __init__(self, run: object, step: int | None, rank: int | None, target: str | None = None,
                 gpu: str | None = None) -> None:
        self.args = (step, rank)

    def run(self) -> None:
        _FakeApp.opened.append(self.args)


def test_tui_opens_the_newest_readable_step_and_names_the_bad_one(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import gprof_tui.browse

    monkeypatch.setattr(gprof_tui.browse, "BrowseApp", _FakeApp)
    _FakeApp.opened = []
    run_dir = _run(tmp_path, bad={3: "meta_list", 2: "memory_null"})
    assert main(["tui", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert _FakeApp.opened == [(1, 0)] and "skipped step 3" in err and "skipped step 2" in err
    assert main(["tui", str(run_dir), "--step", "3"]) == 2
    assert "meta is a JSON list" in capsys.readouterr().err and _FakeApp.opened == [(1, 0)]


def test_load_and_open_run_read_through_the_same_checks(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, 2, bad={1: "meta_wrong_type"})
    with pytest.raises(CorruptStepError, match=r"meta\.rank is a JSON string"):
        open_run(run_dir).open()


def test_step_file_names_take_ascii_digits_only(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, 1)
    (run_dir / "plugins" / "gprof" / "step١.rank0-of-1.sqlite").write_bytes(GOLDEN_MLP.read_bytes())
    assert [(f.step, f.rank) for f in open_run(run_dir).files()] == [(0, 0)]
