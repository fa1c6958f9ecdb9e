"""Issue 12, items 5, 10, 11 and 12 (writer side): training never stops because the step files
cannot be written, the files others read are readable, two sessions under one run name stay apart,
and a writer killed mid-step leaves nothing behind for long.

The full disk and the read-only logdir are real: a 2 MiB tmpfs, and a tmpfs mounted read-only
(root, which the tests run as, ignores file modes but not a read-only mount). Without permission
to mount, those tests skip and say so."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import ROOT, bitwise_equal, gprof_cli, seeded_net

import gprof
from gprof.graph.model import StepGraph, StepMeta
from gprof.store import open_run, plugin_dir, step_filename, write_step
from gprof.store.queries.ranks import run_listing
from gprof.store.step_file import StepWriter
from gprof.store.temp_files import remove_stale_temp_files


def train(prof: gprof.profile | None, steps: int, width: int = 16) -> list[torch.Tensor]:
    """A seeded run; returns the parameters after it (compared bit for bit with and without profiling)."""
    model, x = seeded_net()
    x = x.repeat(width, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        model(x).square().sum().backward()
        opt.step()
        opt.zero_grad()
        if prof is not None:
            prof.step()
    return [p.detach().clone() for p in model.parameters()]


def gprof_warnings(caught: list[warnings.WarningMessage], text: str) -> list[str]:
    return [str(w.message) for w in caught if str(w.message).startswith("torch-gprof") and text in str(w.message)]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted after the test."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to make a real full disk ({r.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> None:
    """Fill the filesystem at ``mnt`` until ``leave`` bytes are free."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    (mnt / "filler").write_bytes(b"\0" * max(0, free - leave))


@pytest.mark.parametrize("worker", [False, True])
def test_training_finishes_on_a_full_disk(tmpfs: Path, worker: bool) -> None:
    expected = train(None, 5)
    _fill(tmpfs, 150_000)  # room for a step or two, then "database or disk is full"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(tmpfs, "full", worker=worker) as prof:
            got = train(prof, 5)
    assert all(bitwise_equal(a, b) for a, b in zip(expected, got))
    failures = gprof_warnings(caught, "could not write")
    assert len(failures) == 1, [str(w.message) for w in caught]
    msg = failures[0]
    assert "full" in msg and str(tmpfs) in msg and "step(s) were saved before it" in msg, msg
    saved = sorted(p.name for p in prof.data_dir.glob("step*.sqlite"))
    assert len(saved) < 5, "the disk was meant to fill up"
    assert not list(prof.data_dir.glob(".*.tmp")), "a half-written temp file was left"
    # every step is kept in memory, written or not (the 6th: the clones `train` returns)
    assert [g.meta.step for g in prof.graphs] == list(range(6))
    for name in saved:  # what was written is whole
        assert gprof.load(prof.data_dir / name).meta.complete


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs: EROFS even for root."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({r.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("worker", [False, True])
def test_training_finishes_on_a_read_only_logdir(readonly_dir: Path, worker: bool) -> None:
    expected = train(None, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(readonly_dir, "ro", worker=worker) as prof:
            got = train(prof, 3)
    assert all(bitwise_equal(a, b) for a, b in zip(expected, got))
    failures = gprof_warnings(caught, "could not write")
    assert len(failures) == 1, [str(w.message) for w in caught]
    assert "Read-only file system" in failures[0] and "0 step(s) were saved" in failures[0], failures[0]
    assert [g.meta.step for g in prof.graphs] == [0, 1, 2, 3]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_step_files_respect_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with gprof.profile(tmp_path, "modes", worker=False) as prof:
            train(prof, 1)
    finally:
        os.umask(old)
    files = [*prof.data_dir.glob("step*.sqlite"), *prof.run_dir.glob("events.out.tfevents.*")]
    assert len(files) == 3 and {f.stat().st_mode & 0o777 for f in files} == {0o666 & ~umask}


def _kill9_mid_write(data_dir: Path) -> Path:
    """A writer killed by SIGKILL with its step half-written; returns the temp file it left."""
    code = ("import sys, time; from gprof.store.step_file import StepWriter; "
            "w = StepWriter(sys.argv[1]); print('ready', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(data_dir / step_filename(0))],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait()
    (tmp,) = data_dir.glob(".*.tmp")
    return tmp


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    data_dir = plugin_dir(tmp_path, "killed")
    data_dir.mkdir(parents=True)
    dead = _kill9_mid_write(data_dir)
    live_child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live writer's temp file, and an older writer's (no pid in its name), fresh and old
        host = dead.name.split(".")[-4]
        live = data_dir / f".{step_filename(1)}.{host}.{live_child.pid}.0123abcd.tmp"
        live.touch()
        fresh_unnamed, old_unnamed = data_dir / f".{step_filename(2)}.x1y2.tmp", data_dir / f".{step_filename(3)}.z9.tmp"
        fresh_unnamed.touch()
        old_unnamed.touch()
        os.utime(old_unnamed, (time.time() - 2 * 3600,) * 2)
        with gprof.profile(tmp_path, "killed", worker=False) as prof:
            train(prof, 1)
        assert not dead.exists() and not old_unnamed.exists()
        assert live.exists() and fresh_unnamed.exists(), "another live writer's temp file must stay"
        assert remove_stale_temp_files(data_dir) == []
    finally:
        live_child.kill()
        live_child.wait()


def test_a_rerun_under_the_same_name_is_kept_apart(tmp_path: Path) -> None:
    with gprof.profile(tmp_path, "again", worker=False) as prof:
        train(prof, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(tmp_path, "again", worker=False) as prof2:
            train(prof2, 3)
    (warned,) = gprof_warnings(caught, "another session")
    session = prof2.graphs[0].meta.session
    assert session and session in warned and prof.graphs[0].meta.session not in ("", session)
    run = open_run(prof.run_dir)
    assert run.sessions() == ["first", session]
    # the newest session, not the stale step 6 (the last step of each: the clones `train` returns)
    assert run.steps() == [0, 1, 2, 3] and run.file().step == 3
    assert all(f.session == session for f in run.files())
    assert run_listing(run)["sessions"] == ["first", session] and run_listing(run)["session"] == session
    old = open_run(prof.run_dir)
    old.session = "first"
    assert old.steps() == list(range(7)) and old.open(6).meta.session == prof.graphs[0].meta.session

    r = gprof_cli("report", str(prof.run_dir), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [s["step"] for s in report["steps"]] == [0, 1, 2, 3] and report["session"] == session
    assert report["sessions"] == ["first", session]
    r = gprof_cli("report", str(prof.run_dir), "--session", "first")
    assert r.returncode == 0 and "== step 6" in r.stdout and "sessions:" in r.stdout, r.stdout + r.stderr
    r = gprof_cli("report", str(prof.run_dir), "--session", "nope")
    assert r.returncode != 0 and "first" in r.stderr and "Traceback" not in r.stderr


def test_a_taken_name_is_never_overwritten(tmp_path: Path) -> None:
    """Two sessions that began together (neither saw the other's files) race for one name: the
    second keeps its step beside the first's instead of replacing it."""
    path = plugin_dir(tmp_path, "race") / step_filename(0)
    graph = StepGraph(meta=StepMeta(run="race", step=0, session="a"))
    write_step(graph, path)
    w = StepWriter(path, fallback=path.with_name(step_filename(0, session="b")))
    assert w.commit(StepMeta(run="race", step=0, session="b"), graph.memory).name == step_filename(0, session="b")
    assert gprof.load(path).meta.session == "a"
    assert open_run(path.parent.parent.parent).sessions() == ["first", "b"]


def test_old_files_without_a_session_still_read(tmp_path: Path) -> None:
    path = plugin_dir(tmp_path, "old") / step_filename(0)
    write_step(StepGraph(meta=StepMeta(run="old", step=0)), path)
    db = sqlite3.connect(path)
    meta = db.execute("SELECT value FROM meta WHERE key = 'meta'").fetchone()[0]
    db.execute("UPDATE meta SET value = ? WHERE key = 'meta'", (meta.replace(', "session": ""', ""),))
    db.commit()
    db.close()
    assert '"session"' not in meta.replace(', "session": ""', "")
    assert gprof.load(path).meta.session == ""
    assert run_listing(open_run(path.parent.parent.parent))["steps"] == [0]
