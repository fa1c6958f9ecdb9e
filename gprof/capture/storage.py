"""How a session's steps reach the disk without ever stopping training.

Everything that can go wrong between a built step and its file (a full disk, a read-only logdir,
another session's files under the same run name) is decided here, in one place the step pipeline
and the step worker (gprof/capture/worker.py) share:

- :class:`GuardedSink` wraps the step writer: a storage error in any call (opening the temp file,
  streaming nodes, commit) is kept, the temp file removed, and the rest of the step is still built
  in memory, so ``prof.graphs`` keeps it.
- :class:`StepStore` names each step's file, warns once when a run already holds another session's
  steps (this session's then go beside them, under names carrying the session id, see
  gprof/store/runs.py), and warns once when a step could not be written: what failed, where, and
  what is lost. After that, steps are built and kept in memory only.
"""
from __future__ import annotations

import os
import re
import secrets
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gprof.graph.model import Edge, MemorySummary, ModuleInfo, Node, StepMeta
from gprof.store.runs import list_step_files, plugin_dir, step_filename
from gprof.store.sink import StepSink
from gprof.store.step_file import StepWriter
from gprof.store.temp_files import remove_stale_temp_files

#: what a full disk, a read-only or vanished logdir, or a file-size limit raise out of the writer
STORE_ERRORS = (OSError, sqlite3.Error)


class GuardedSink:
    """A :class:`StepSink` that never raises a storage error: the first one is kept in ``error``,
    the partial temp file is dropped, and later calls do nothing, so the builder goes on in memory."""

    def __init__(self, open_sink: Callable[[], StepSink] | None, where: Path | None,
                 error: str | None = None) -> None:
        self.where = where
        self.error = error
        self._sink: StepSink | None = None
        if open_sink is not None and error is None:
            try:
                self._sink = open_sink()
            except STORE_ERRORS as e:  # the writer removed its own temp file
                self.error = f"{type(e).__name__}: {e}"

    def _call(self, sink: StepSink, fn: Callable[[StepSink], Any]) -> Any:
        try:
            return fn(sink)
        except STORE_ERRORS as e:
            self.error = f"{type(e).__name__}: {e}"
            self._sink = None
            try:
                sink.abort()  # drops the temp file
            except STORE_ERRORS:
                pass
            return None

    def _each(self, fn: Callable[[StepSink], Any]) -> None:
        if self._sink is not None:
            self._call(self._sink, fn)

    def add_nodes(self, nodes: Iterable[Node]) -> None:
        self._each(lambda s: s.add_nodes(nodes))

    def add_edges(self, edges: Iterable[Edge]) -> None:
        self._each(lambda s: s.add_edges(edges))

    def bump_live_bytes(self, start: int, stop: int, nbytes: int) -> None:
        self._each(lambda s: s.bump_live_bytes(start, stop, nbytes))

    def set_modules(self, modules: Iterable[ModuleInfo]) -> None:
        self._each(lambda s: s.set_modules(modules))

    def set_analysis(self, name: str, value: Any) -> None:
        self._each(lambda s: s.set_analysis(name, value))

    def set_aggregates(self, aggregates: dict[str, list[int]]) -> None:
        self._each(lambda s: s.set_aggregates(aggregates))

    def commit(self, meta: StepMeta, memory: MemorySummary) -> Path | None:
        """The file written, or None (``error`` says why; nothing half-written is left)."""
        sink, self._sink = self._sink, None
        return None if sink is None else self._call(sink, lambda s: s.commit(meta, memory))

    def abort(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            self._call(sink, lambda s: s.abort())


def open_step_sink(path: str, fallback: str | None) -> GuardedSink:
    """The guarded writer of one step file (``fallback``: see :class:`StepWriter`)."""
    return GuardedSink(lambda: StepWriter(path, fallback), Path(path))


def new_session_id(world_size: int) -> str:
    """This session's id, written into each step file. The ranks of one job must share it, so a
    multi-rank job takes ``GPROF_SESSION``, else torchrun's run id, else the launcher's pid (the
    ranks' common parent on one machine; set ``GPROF_SESSION`` for a multi-node launch without a
    run id). One process makes its own: start time and pid."""
    shared = os.environ.get("GPROF_SESSION", "")
    if not shared and world_size > 1:
        elastic = os.environ.get("TORCHELASTIC_RUN_ID", "")
        shared = elastic if elastic not in ("", "none") else f"job{os.getppid()}"
    if not shared:
        shared = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(2)}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", shared)[:64]


class StepStore:
    """Where this session's steps go, and the one warning for each way that can go wrong."""

    def __init__(self, logdir: Path, run: str) -> None:
        self.data_dir = plugin_dir(logdir, run)
        self.run = run
        self.session = ""
        #: this session writes ``step<N>.rank<R>-of-<W>.<session>.sqlite``: the run held another
        #: session's steps when it began, or took one of this session's names
        self.beside = False
        #: the first write failure; from then on steps are kept in memory only
        self.failed: str | None = None
        self.saved = 0

    def open(self) -> None:
        """When the block is entered: remove temp files that writers killed mid-step left behind."""
        remove_stale_temp_files(self.data_dir)

    def begin(self, meta: StepMeta) -> tuple[str, str | None]:
        """Stamp ``meta`` with the session; returns (the step's file, where it goes if that is taken)."""
        if not self.session:
            self.session = new_session_id(meta.world_size)
            others = [f for f in list_step_files(self.data_dir) if f.rank == meta.rank]
            if others:
                self._go_beside(f"holds {len(others)} step file(s) of rank {meta.rank} from another session")
        meta.session = self.session
        plain = str(self.data_dir / step_filename(meta.step, meta.rank, meta.world_size))
        beside = str(self.data_dir / step_filename(meta.step, meta.rank, meta.world_size, self.session))
        return (beside, None) if self.beside else (plain, beside)

    def sink(self, meta: StepMeta) -> GuardedSink:
        """The sink of a step built in this process: a discarding one once writing failed."""
        path, fallback = self.begin(meta)
        if self.failed is not None:
            return GuardedSink(None, None, self.failed)
        return open_step_sink(path, fallback)

    def written(self, meta: StepMeta, path: Path | None, error: str | None, where: Path | None) -> bool:
        """Account for one step's write; returns whether it reached the disk."""
        if path is None:
            self.failure(meta.step, where or self.data_dir, error or "unknown error")
            return False
        self.saved += 1
        if not self.beside and path.name != step_filename(meta.step, meta.rank, meta.world_size):
            self._go_beside(f"already had a step {meta.step} file of rank {meta.rank} from another session "
                            "(two processes writing one run)")
        return True

    def failure(self, step: int, where: Path, error: str | BaseException) -> None:
        """Writing failed: the one warning (what, where, what is lost), and no file writes after it."""
        if self.failed is not None:
            return
        self.failed = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        warnings.warn(
            f"torch-gprof: could not write step {step} of run {self.run!r} to {where}: {self.failed}. "
            f"{self.saved} step(s) were saved before it; this step and every later one are not written (they are "
            "kept in memory only, in prof.graphs). Training goes on; free space or fix the logdir's permissions "
            "for the next run.", RuntimeWarning, stacklevel=5)

    def _go_beside(self, why: str) -> None:
        self.beside = True
        warnings.warn(
            f"torch-gprof: run {self.run!r} ({self.data_dir}) {why}. This session ({self.session}) writes its steps "
            f"beside them, as step<N>.rank<R>-of-<W>.{self.session}.sqlite; readers show the newest session by "
            "default, and `torch-gprof report RUN --session ID` picks another. Use a new run name to keep runs "
            "apart.", RuntimeWarning, stacklevel=5)
