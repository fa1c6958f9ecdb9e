"""Storage: one atomic SQLite file per (rank, step) under ``<logdir>/<run>/plugins/gprof/``."""
from __future__ import annotations

import os
from pathlib import Path

from gprof.graph.model import StepGraph
from gprof.store.decode import CorruptStepError
from gprof.store.runs import (
    PLUGIN_NAME,
    Run,
    StepFile,
    UnknownRunError,
    find_runs,
    open_run,
    plugin_dir,
    step_filename,
)
from gprof.store.step_file import SCHEMA_VERSION, StepReader, StepWriter, StoreError, write_step


def load(path: str | os.PathLike[str], step: int | None = None, rank: int | None = None) -> StepGraph:
    """The graph objects capture produced, from a step file or a run directory (last step by default)."""
    p = Path(path)
    if p.is_file():
        with StepReader(p) as r:
            return r.load()
    with open_run(p).open(step, rank) as r:
        return r.load()


__all__ = [
    "PLUGIN_NAME", "SCHEMA_VERSION", "CorruptStepError", "Run", "StepFile", "StepReader", "StepWriter", "StoreError",
    "UnknownRunError", "find_runs", "load", "open_run", "plugin_dir", "step_filename", "write_step",
]
