"""Spool directories of training processes killed with SIGKILL (issue 17): the worker of a killed
process writes what it was sent and removes the directory; when both die, the next worker's start
removes it. Only this user's real directories whose owner is gone and whose lock nobody holds."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gprof.capture.worker import StepWorker, remove_stale_spools
from gprof.store import open_run
from tests.conftest import ROOT

_JOB = textwrap.dedent(f"""
    import os, signal, sys, time
    sys.path.insert(0, {str(ROOT)!r})
    import gprof
    from gprof.capture.worker import StepWorker
    from tests.conftest import seeded_net

    prof = gprof.profile(sys.argv[1], run="k").__enter__()
    model, x = seeded_net()
    for _ in range(2):
        model(x).sum().backward()
        prof.step()
    worker = StepWorker.shared()
    print(worker.spool_dir, worker.proc.pid, flush=True)
    if sys.argv[2] == "self":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(300)  # killed by the test
    """)


def _start_job(tmp_path: Path, how: str) -> tuple[subprocess.Popen, Path, int]:
    job = subprocess.Popen([sys.executable, "-c", _JOB, str(tmp_path), how], stdout=subprocess.PIPE, text=True,
                           cwd=tmp_path)
    assert job.stdout is not None
    spool, worker = job.stdout.readline().split()
    return job, Path(spool), int(worker)


def _gone(pid: int) -> bool:
    """Exited (a zombie nobody reaps counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait(cond, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_killed_training_process_its_worker_writes_and_cleans_up(tmp_path) -> None:
    job, spool, worker = _start_job(tmp_path, "self")
    assert job.wait(timeout=120) == -signal.SIGKILL
    assert _wait(lambda: not spool.exists()), f"{spool} is still there"
    assert _wait(lambda: _gone(worker))
    assert open_run(tmp_path / "k").steps() == [0, 1], "the steps handed off before the kill are written"


def test_next_start_removes_what_a_killed_process_and_worker_left(tmp_path) -> None:
    job, spool, worker = _start_job(tmp_path, "test")
    os.kill(worker, signal.SIGKILL)
    job.kill()
    job.wait(timeout=60)
    assert _wait(lambda: _gone(worker))
    assert spool.is_dir(), "nobody was left to remove it"
    fresh = StepWorker()  # what the next profiled process starts
    try:
        assert not spool.exists()
        assert fresh.spool_dir.is_dir(), "its own directory is not stale"
    finally:
        fresh.shutdown()


def test_only_stale_directories_of_this_user_are_removed(tmp_path) -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    dead = done.pid
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")

    def spool(name: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "0.step").write_bytes(b"")
        return d

    stale = spool(f"gprof-spool-{dead}-abc")
    with_link = spool(f"gprof-spool-{dead}-links")
    (with_link / "escape").symlink_to(outside, target_is_directory=True)
    live_owner = spool(f"gprof-spool-{os.getpid()}-live")
    held = spool(f"gprof-spool-{dead}-held")  # a dead owner's, but its worker still runs
    lock = os.open(held / "lock", os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_SH)
    old_format = spool("gprof-spool-k2j4h1x0")
    link = tmp_path / f"gprof-spool-{dead}-symlink"
    link.symlink_to(outside, target_is_directory=True)
    other = spool(f"not-gprof-spool-{dead}-x")
    try:
        removed = remove_stale_spools(tmp_path)
    finally:
        os.close(lock)
    assert sorted(removed) == sorted([stale, with_link])
    assert not stale.exists() and not with_link.exists()
    assert (outside / "keep.txt").read_text() == "x", "nothing is removed through a symlink"
    assert live_owner.is_dir() and held.is_dir() and old_format.is_dir() and other.is_dir()
    assert link.is_symlink()
    assert remove_stale_spools(tmp_path) == [held], "once its lock is free, it is stale"


def test_shutdown_twice_is_harmless() -> None:
    worker = StepWorker()
    worker.shutdown()
    worker.shutdown()
    assert not worker.spool_dir.exists()
