"""``examples/ddp_train.py`` under torchrun, as the README tells users to run it: every rank
writes its files into one run and rank 0 prints the report with the cross-rank section."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gprof.store import open_run

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not on PATH next to this Python (torch's console script)")
def test_ddp_example_under_torchrun(tmp_path: Path) -> None:
    proc = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node=2",
         str(REPO / "examples" / "ddp_train.py"), "--logdir", str(tmp_path), "--steps", "2",
         "--straggle-rank", "1", "--straggle-ms", "150"],
        cwd=REPO, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "== cross-rank: 2 ranks of 2" in out
    assert "straggler: rank 1" in out
    assert "collective sequences match across ranks" in out
    checksums = {line.split("checksum ")[1] for line in out.splitlines() if "parameter checksum" in line}
    assert len(checksums) == 1, "DDP keeps both ranks' parameters equal"
    run = open_run(tmp_path / "ddp")
    assert {(f.step, f.rank, f.world_size) for f in run.files()} == {(s, r, 2) for s in range(2) for r in range(2)}
