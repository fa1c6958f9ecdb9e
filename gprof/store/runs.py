"""Where step files live and how runs are found.

Layout: ``<logdir>/<run>/plugins/gprof/step<N>.rank<R>-of-<W>.sqlite`` (TensorBoard's convention
for a plugin's own per-run data). Runs are named by their path relative to the logdir, and every
lookup goes through the discovered set, so a run name from a URL can never escape the logdir.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from gprof.store.step_file import StepReader, StoreError

PLUGIN_NAME = "gprof"
PLUGIN_SUBDIR = Path("plugins") / PLUGIN_NAME
#: ASCII digits only: ``\d`` also matches other scripts' digits, which ``int`` then reads as numbers.
#: A session that finds the run holding another session's steps adds its id before ``.sqlite``.
_STEP_RE = re.compile(r"^step([0-9]+)\.rank([0-9]+)-of-([0-9]+)(?:\.([A-Za-z0-9_-]{1,64}))?\.sqlite$")
#: the session of a run's files named without a session id: the run's first writer
FIRST_SESSION = "first"


class UnknownRunError(StoreError):
    pass


def step_filename(step: int, rank: int = 0, world_size: int = 1, session: str | None = None) -> str:
    return f"step{step:06d}.rank{rank}-of-{world_size}{'.' + session if session else ''}.sqlite"


def plugin_dir(logdir: str | os.PathLike[str], run: str) -> Path:
    return Path(logdir) / run / PLUGIN_SUBDIR


@dataclass(frozen=True)
class StepFile:
    step: int
    rank: int
    world_size: int
    path: Path
    session: str = FIRST_SESSION


def list_step_files(data_dir: Path) -> list[StepFile]:
    """Every step file in ``data_dir``, of every session, by (step, rank). A symlink that resolves
    outside the run directory is left out: nothing a reader opens may lie outside its run."""
    out = []
    try:
        entries = list(os.scandir(data_dir))
    except OSError:
        return []
    for entry in entries:
        m = _STEP_RE.match(entry.name)
        if m and (not entry.is_symlink() or _inside(Path(entry.path), data_dir.parent.parent)):
            out.append(StepFile(int(m[1]), int(m[2]), int(m[3]), Path(entry.path), m[4] or FIRST_SESSION))
    return sorted(out, key=lambda f: (f.step, f.rank))


def _inside(path: Path, directory: Path) -> bool:
    try:
        return path.resolve().is_relative_to(directory.resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


class Run:
    """One run directory; lists its (step, rank) files without opening them."""

    def __init__(self, name: str, path: Path, session: str | None = None) -> None:
        self.name = name
        self.path = path  # the run directory (parent of plugins/)
        #: which session's files this run shows (see :meth:`sessions`); None: the newest
        self.session = session

    @property
    def data_dir(self) -> Path:
        return self.path / PLUGIN_SUBDIR

    def sessions(self) -> list[str]:
        """The sessions that wrote this run's files, oldest first: the first writer's unnamed files,
        then the others by when their first file was written."""
        first: dict[str, float] = {}
        for f in list_step_files(self.data_dir):
            try:
                mtime = -1.0 if f.session == FIRST_SESSION else f.path.stat().st_mtime
            except OSError:
                continue
            first[f.session] = min(first.get(f.session, mtime), mtime)
        return sorted(first, key=lambda s: (first[s], s))

    def files(self) -> list[StepFile]:
        """The step files of ``self.session``; by default of the newest session (a re-run under
        the same name shows its own steps, not the older run's leftovers)."""
        files = list_step_files(self.data_dir)
        session = self.session
        if session is None and any(f.session != FIRST_SESSION for f in files):
            session = self.sessions()[-1]
        return files if session is None else [f for f in files if f.session == session]

    def steps(self) -> list[int]:
        return sorted({f.step for f in self.files()})

    def ranks(self) -> list[int]:
        return sorted({f.rank for f in self.files()})

    def file(self, step: int | None = None, rank: int | None = None) -> StepFile:
        """The file for (step, rank); step None means the last step, rank None the lowest rank."""
        files = self.files()
        if not files:
            raise StoreError(f"run {self.name!r} has no recorded steps yet (looked in {self.data_dir})")
        if rank is None:
            rank = min(f.rank for f in files)
        ranked = [f for f in files if f.rank == rank]
        if not ranked:
            raise StoreError(f"run {self.name!r} has no rank {rank}; ranks: {sorted({f.rank for f in files})}")
        if step is None:
            return ranked[-1]
        for f in ranked:
            if f.step == step:
                return f
        raise StoreError(f"run {self.name!r} rank {rank} has no step {step}; steps: {[f.step for f in ranked]}")

    def open(self, step: int | None = None, rank: int | None = None) -> StepReader:
        return StepReader(self.file(step, rank).path)


def find_runs(logdir: str | os.PathLike[str]) -> dict[str, Run]:
    """All runs under ``logdir`` (including ``logdir`` itself, named '.'), by relative name."""
    root = Path(logdir)
    runs: dict[str, Run] = {}
    if not root.is_dir():
        return runs
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        p = Path(dirpath)
        if p.name == PLUGIN_NAME and p.parent.name == "plugins":
            run_dir = p.parent.parent
            rel = run_dir.relative_to(root).as_posix()
            runs[rel] = Run(rel, run_dir)
            dirnames[:] = []
        elif p.name == "plugins":
            dirnames[:] = [d for d in dirnames if d == PLUGIN_NAME]
    return dict(sorted(runs.items()))


def open_run(path_or_logdir: str | os.PathLike[str], run: str | None = None) -> Run:
    """Resolve what a user typed: a run directory, or a logdir plus a run name."""
    p = Path(path_or_logdir)
    if run is None:
        if (p / PLUGIN_SUBDIR).is_dir():
            return Run(p.name or str(p), p)
        if p.is_file() and (m := _STEP_RE.match(p.name)):
            return Run(p.parent.parent.parent.name, p.parent.parent.parent, m[4] or FIRST_SESSION)
        runs = find_runs(p)
        if len(runs) == 1:
            return next(iter(runs.values()))
        if not p.exists():
            raise UnknownRunError(f"{p}: no such run directory or logdir")
        if not runs:
            raise UnknownRunError(f"{p}: no torch-gprof runs here (expected {PLUGIN_SUBDIR}/ inside a run directory)")
        raise UnknownRunError(f"{p} holds several runs; pick one of: {', '.join(runs)}")
    runs = find_runs(p)
    if run not in runs:
        raise UnknownRunError(f"unknown run {run!r} in {p}; runs: {', '.join(runs) or '(none)'}")
    return runs[run]


def debug_address_path(run_dir: str | os.PathLike[str], rank: int) -> Path:
    """Where rank ``rank``'s debug server writes its address and token: beside the run's step
    files, so ``torch-gprof attach RUN --rank R`` finds it from the run directory alone."""
    return Path(run_dir) / PLUGIN_SUBDIR / f"debug.rank{rank}.json"
