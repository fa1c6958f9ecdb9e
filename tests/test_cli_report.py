"""Acceptance (issue 2, "Report"): ``torch-gprof report RUN [--step N] [--rank R] [--json]``.

Two subprocess runs prove the installed command and ``python -m gprof`` work end to end; the other
cases call the same ``gprof.cli.main`` in-process, because each interpreter start imports torch
(seconds on the 2-core CI machine).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, gprof_cli

from gprof.cli import main

#: the fields docs/report-schema.md promises in every step object
STEP_FIELDS = {
    "step": int, "rank": int, "nodes": int, "phases": dict, "module_coverage": float,
    "backward_linked": float, "time_ns": int, "peak_memory_bytes": int, "peak_node": dict, "flops": int,
}


def cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_installed_command_help() -> None:
    exe = Path(sys.executable).parent / "torch-gprof"
    if not exe.exists():
        pytest.skip(f"torch-gprof entry point not installed next to {sys.executable} (pip install -e .)")
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "report" in res.stdout and "usage: torch-gprof" in res.stdout


@pytest.mark.slow
def test_python_m_gprof_report_json(recorded_examples) -> None:
    rec = recorded_examples["mlp"]
    res = gprof_cli("report", rec.run_dir, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["run"] == "mlp" and report["schema_version"] == 1
    steps = report["steps"]
    assert [s["step"] for s in steps] == list(range(len(rec.graphs)))
    for s, g in zip(steps, rec.graphs):
        for field, typ in STEP_FIELDS.items():
            assert isinstance(s[field], typ), f"{field}: {s[field]!r} is not {typ.__name__}"
        assert s["nodes"] == len(g.nodes)
        assert s["phases"] == {p: len(g.by_phase(p)) for p in ("forward", "backward", "optimizer", "other")}
        assert s["flops"] == sum(n.flops for n in g.nodes)
        assert s["time_ns"] == sum(n.dur_ns for n in g.nodes)
        assert s["peak_memory_bytes"] == g.memory.peak_bytes
        peak = g.nodes[g.memory.peak_node]
        assert s["peak_node"] == {"idx": peak.idx, "key": peak.key, "op": peak.op, "module": peak.module,
                                  "phase": peak.phase}
        assert 0.99 <= s["module_coverage"] <= 1 and 0.99 <= s["backward_linked"] <= 1


def test_schema_doc_lists_every_field() -> None:
    doc = (ROOT / "docs" / "report-schema.md").read_text()
    for field in STEP_FIELDS:
        assert f"`{field}`" in doc, f"docs/report-schema.md does not document {field}"


def test_report_text(recorded_examples, capsys) -> None:
    rec = recorded_examples["transformer"]
    code, out, err = cli(capsys, "report", rec.run_dir)
    assert code == 0, err
    last = rec.graphs[-1]
    assert f"== step {last.meta.step}  rank 0/1  complete" in out
    assert "top ops by time" in out and ("aten.addmm.default" in out or "aten.mm.default" in out)
    assert "module (inclusive)" in out and "encoder" in out and "forward" in out and "backward" in out
    assert "peak memory" in out and "by category" in out
    for phase in ("forward", "backward"):
        assert f"{phase} {len(last.by_phase(phase))}" in out


def test_report_step_and_rank_selection(recorded_examples, capsys) -> None:
    rec = recorded_examples["mlp"]
    code, out, err = cli(capsys, "report", rec.run_dir, "--step", 1, "--rank", 0, "--json")
    assert code == 0, err
    steps = json.loads(out)["steps"]
    assert [(s["step"], s["rank"]) for s in steps] == [(1, 0)]
    code, out, err = cli(capsys, "report", rec.run_dir, "--step", 1)
    assert code == 0 and "== step 1 " in out and "== step 0 " not in out


def test_report_picks_a_run_from_a_logdir(recorded_examples, capsys) -> None:
    logdir = recorded_examples["mlp"].logdir
    code, out, err = cli(capsys, "report", logdir)
    assert code == 2 and "several runs" in err and "mlp" in err and "Traceback" not in err
    code, out, err = cli(capsys, "report", logdir, "--run-name", "mlp", "--json")
    assert code == 0, err
    assert json.loads(out)["run"] == "mlp"


@pytest.mark.parametrize("args, message", [
    (("{logdir}", "--run-name", "no-such-run"), "unknown run 'no-such-run'"),
    (("{tmp}/does/not/exist",), "no such run directory"),
    (("{tmp}/empty",), "no torch-gprof runs here"),
    (("{mlp}", "--step", "99"), "has no step 99"),
    (("{mlp}", "--rank", "3"), "has no rank 3"),
    (("{tmp}/corrupt/plugins/gprof/step000000.rank0-of-1.sqlite",), "corrupt"),
])
def test_bad_input_exits_2_with_a_clear_message(recorded_examples, tmp_path, capsys, args, message) -> None:
    mlp = recorded_examples["mlp"]
    bad = tmp_path / "corrupt" / "plugins" / "gprof"
    bad.mkdir(parents=True)
    (bad / "step000000.rank0-of-1.sqlite").write_bytes(b"\0" * 4096)
    (tmp_path / "empty").mkdir()
    fmt = {"logdir": mlp.logdir, "tmp": tmp_path, "mlp": mlp.run_dir}
    code, out, err = cli(capsys, "report", *(a.format(**fmt) for a in args))
    assert code == 2, f"exit {code}; stdout {out[:200]!r}"
    assert message in err and err.startswith("torch-gprof report: "), err
    assert "Traceback" not in err


def test_no_command_prints_help_and_exits_2(capsys) -> None:
    code, out, _ = cli(capsys)
    assert code == 2 and "report" in out


def test_bad_option_is_an_argparse_error(recorded_examples, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["report", str(recorded_examples["mlp"].run_dir), "--step", "one"])
    assert e.value.code == 2
    assert "invalid integer value" in capsys.readouterr().err
