"""Run-level listings: which steps and ranks a run holds, and the rank files of one step."""
from __future__ import annotations

from typing import Any

from gprof.store.runs import Run, StepFile
from gprof.store.step_file import StoreError


def run_listing(run: Run) -> dict[str, Any]:
    """{"run", "steps", "ranks", "world_size"} of a run, from its file names only."""
    files = run.files()
    return {"run": run.name, "steps": sorted({f.step for f in files}), "ranks": sorted({f.rank for f in files}),
            "world_size": max((f.world_size for f in files), default=1)}


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
