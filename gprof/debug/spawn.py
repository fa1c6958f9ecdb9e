"""Ranks started with ``torch.multiprocessing.spawn`` under ``torch-gprof debug``.

A spawned rank is a fresh interpreter that runs only the function it was given, not the runner,
so the runner wraps that function: each rank records its own run (``rank=i``, steps ended by the
optimizer) and serves its own debugger, found by ``torch-gprof attach RUN_DIR --rank R``. Rank 0
waits for a UI on its first hit (the UI follows it); the other ranks log their hits.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gprof.debug import DebugSession

if TYPE_CHECKING:
    import gprof


class RankRun:
    """The spawned function, wrapped; picklable, so the spawn start method can send it."""

    def __init__(self, fn: Callable[..., Any], nprocs: int, logdir: str, run: str, breaks: Sequence[str]) -> None:
        self.fn, self.nprocs, self.logdir, self.run, self.breaks = fn, nprocs, logdir, run, list(breaks)

    def __call__(self, rank: int, *args: Any) -> Any:
        import gprof

        with gprof.profile(logdir=self.logdir, run=self.run, rank=rank, world_size=self.nprocs,
                           step_boundary="optimizer") as prof:
            session = DebugSession(self.breaks, wait=rank == 0)
            session.observe(prof)
            try:
                return self.fn(rank, *args)
            finally:
                session.close()


@contextlib.contextmanager
def debug_spawned_ranks(session: DebugSession, logdir: str, run: str, breaks: Sequence[str],
                        launcher: gprof.profile | None = None) -> Iterator[None]:
    """While active, ``mp.spawn`` / ``mp.start_processes`` record and debug every rank; the UI
    attached to ``session`` is told where the ranks' servers are (a ``ranks`` event). The launching
    process's own recording (``launcher``) stops there, unsaved: what it ran before spawning (data set-up)
    is no training step, and saved as ``rank 0 of 1`` beside the ranks' files it would read as a rank."""
    import torch.multiprocessing as mp

    module = sys.modules["torch.multiprocessing.spawn"]
    original = module.start_processes

    def start_processes(fn: Callable[..., Any], args: tuple = (), nprocs: int = 1, *rest: Any, **kw: Any) -> Any:
        run_dir = f"{logdir}/{run}"
        # The launcher is no rank: its own debug.rank0.json in the run directory would send
        # `attach RUN --rank 0` (and the UI following rank 0) to it instead of to the spawned rank 0,
        # which would then wait for a UI forever. The UI that started it reaches it by --address-file.
        for path in session.address_files:
            path.unlink(missing_ok=True)
        session.address_files.clear()
        if launcher is not None:
            launcher.stop(save=False)
        print(f"torch-gprof debug: {nprocs} spawned ranks, each recorded under {run_dir}; the UI follows rank 0 "
              f"({{ and }} switch ranks). From another terminal: torch-gprof attach {run_dir} --rank R", flush=True)
        session.debugger.ranks = {"run_dir": run_dir, "world_size": nprocs}
        session.server.broadcast({"event": "ranks", **session.debugger.ranks})
        return original(RankRun(fn, nprocs, logdir, run, breaks), args, nprocs, *rest, **kw)

    for where in (module, mp):  # mp.spawn calls the module's; some scripts call mp.start_processes
        where.start_processes = start_processes  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for where in (module, mp):
            where.start_processes = original  # type: ignore[attr-defined]
