"""Live graph-node debugging: ``gprof.debug(prof)`` puts a debug server on a profile.

    with gprof.profile(logdir="runs", run="exp1") as prof:
        gprof.debug(prof, breaks=["nan", "@encoder.layers.0:backward if absmax > 1e4"])
        ...

then, from another terminal, ``torch-gprof attach runs/exp1 --rank 0``. The server listens on
loopback (or a Unix socket) only and wants the token it wrote, with mode 0600, to
``<logdir>/<run>/plugins/gprof/debug.rank<R>.json``. Breakpoint syntax: docs/debugger.md.
"""
from __future__ import annotations

import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gprof.debug.client import DebugClient, DebugCommandError, DebugConnectionError, resolve_target
from gprof.debug.controller import Debugger
from gprof.debug.server import DebugServer, DebugServerError
from gprof.debug.spec import BreakpointSpecError, parse_breakpoint
from gprof.store.runs import debug_address_path

DEFAULT_BREAKS = ("nan",)


class DebugSession:
    """A debugger observing one or more profiles, and the server that exposes it.

    ``wait``: a breakpoint hit while no UI is attached pauses until one attaches. Off by default,
    so an unattended job (a torchrun rank nobody watches) logs its hits and runs on.
    """

    def __init__(self, breaks: Sequence[str] = DEFAULT_BREAKS, address: str = "127.0.0.1:0",
                 token: str | None = None, *, wait: bool = False) -> None:
        self._profiles: list[Any] = []
        self.debugger = Debugger(list(breaks), state_names=self._state_names, step_of=self._step,
                                 wait_unattended=wait)
        self.server = DebugServer(self.debugger, address, token)
        self.address_files: list[Path] = []

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def token(self) -> str:
        return self.server.token

    def _state_names(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for prof in self._profiles:
            out.update(prof.state_names())
        return out

    def _step(self) -> int:
        return self._profiles[-1].step_num if self._profiles else 0

    def observe(self, prof: Any) -> Path:
        """Attach to a ``gprof.profile`` and write its ``debug.rank<R>.json``; returns that path."""
        prof.add_observer(self.debugger)
        prof.add_failure_observer(self.debugger.on_op_failed)
        prof.add_step_callback(self.debugger.on_step_saved)
        self._profiles.append(prof)
        self.debugger.run_dir = str(prof.run_dir)
        self.debugger.rank, self.debugger.world_size = prof.rank, prof.world_size
        path = self.server.write_address_file(debug_address_path(prof.run_dir, prof.rank), rank=prof.rank,
                                              run_dir=str(prof.run_dir))
        self.address_files.append(path)
        return path

    def wait_for_client(self, timeout: float | None = None) -> bool:
        """Block until a UI has attached (e.g. before the first step of one torchrun rank)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.server.client_count == 0:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        self.server.close()
        for prof in self._profiles:
            prof.remove_observer(self.debugger)
            prof.remove_failure_observer(self.debugger.on_op_failed)
            prof.remove_step_callback(self.debugger.on_step_saved)
        for p in self.address_files:
            p.unlink(missing_ok=True)


def debug(prof: Any, breaks: Sequence[str] = DEFAULT_BREAKS, *, address: str = "127.0.0.1:0",
          token: str | None = None, wait: bool = False, quiet: bool = False) -> DebugSession:
    """Serve a live debugger for ``prof`` (a ``gprof.profile``).

    ``breaks`` are breakpoint specs (default: anomaly mode, ``nan``); ``address`` is
    ``127.0.0.1:PORT`` (0 picks a free port) or ``unix:/path``. A breakpoint hit pauses the thread
    that ran the op until a UI continues it; with no UI attached, the hit is logged and recorded
    on the node instead, so an unwatched job never hangs. ``wait=True`` blocks here until a UI
    attaches, and makes every later hit wait for one too.
    """
    session = DebugSession(breaks, address, token, wait=wait)
    path = session.observe(prof)
    if not quiet:
        print(f"torch-gprof: debugger listening on {session.address}; attach with: torch-gprof attach {path}",
              file=sys.stderr, flush=True)
    if wait:
        session.wait_for_client()
    return session


class _CallableModule(types.ModuleType):
    """``gprof.debug`` names both this package and :func:`debug`. Which one the ``gprof`` package
    holds depends on import order, so the package itself calls through: ``gprof.debug(prof)``
    always works."""

    def __call__(self, *args: Any, **kwargs: Any) -> DebugSession:
        return debug(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "BreakpointSpecError", "DebugClient", "DebugCommandError", "DebugConnectionError", "DebugServer",
    "DebugServerError", "DebugSession", "Debugger", "debug", "parse_breakpoint", "resolve_target",
]
