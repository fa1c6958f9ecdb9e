"""The architecture's rules, enforced: the import contracts in pyproject.toml (import-linter) and
the readers' torch-free import, each checked in a fresh interpreter."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_RUN = ROOT / "tests" / "data" / "report_golden" / "logdir" / "ddp"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e .[test])")
    r = _run(exe)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readers_import_no_torch() -> None:
    code = ("import sys, gprof.report, gprof.store, gprof.distributed, gprof.export, gprof_tb.plugin, gprof_tui; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = _run(sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr


def test_report_of_a_multi_rank_run_runs_without_torch() -> None:
    """The whole text report, analyses and cross-rank section included, formats without torch."""
    code = ("import io, sys; from gprof.commands.report import print_run_report; "
            f"print_run_report({str(GOLDEN_RUN)!r}, io.StringIO()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = _run(sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr
