"""Run-level listings: which steps and ranks a run holds, the rank files of one step, and the
newest step that can be read."""
from __future__ import annotations

from typing import Any

from gprof.store.runs import Run, StepFile
from gprof.store.step_file import StepReader, StoreError


def run_listing(run: Run) -> dict[str, Any]:
    """{"run", "steps", "ranks", "world_size"} of a run, from its file names only; with
    "sessions" (oldest first) and the "session" shown when several sessions wrote under its name."""
    files = run.files()
    out = {"run": run.name, "steps": sorted({f.step for f in files}), "ranks": sorted({f.rank for f in files}),
           "world_size": max((f.world_size for f in files), default=1)}
    sessions = run.sessions()
    if len(sessions) > 1:
        out |= {"sessions": sessions, "session": run.session or sessions[-1]}
    return out


def step_files(run: Run, step: int | None = None) -> tuple[int, list[StepFile]]:
    """(step, the files of every rank that recorded it); ``step`` None is the last step.
    Raises StoreError when no rank recorded it."""
    files = run.files()
    if step is None and files:
        step = files[-1].step
    chosen = [f for f in files if f.step == step]
    if not chosen:
        raise StoreError(f"run {run.name!r} has no step {step}; steps: {run.steps()}")
    return chosen[0].step, chosen


def newest_readable(run: Run, rank: int | None = None) -> tuple[StepFile, list[tuple[StepFile, StoreError]]]:
    """The newest step file of ``rank`` (default: the lowest) that opens, and the newer ones that do
    not, with why: what a viewer opens by default, so one damaged last step leaves the run
    browsable. Raises the newest file's error when none opens."""
    newest = run.file(None, rank)
    skipped: list[tuple[StepFile, StoreError]] = []
    for f in reversed([f for f in run.files() if f.rank == newest.rank]):
        try:
            StepReader(f.path).close()
            return f, skipped
        except StoreError as e:
            skipped.append((f, e))
    raise skipped[0][1]
