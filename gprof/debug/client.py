"""The UI side of the debug protocol (see gprof/debug/server.py), and finding a server.

A server is named by the 0600 JSON file it wrote (``debug_address_path`` in
gprof/store/runs.py), by a run directory plus a rank, or by an address plus a token. The token
never comes from a command line, where every local user could read it in ``/proc/<pid>/cmdline``:
it is in the address file, a token file, or ``GPROF_DEBUG_TOKEN``.
"""
from __future__ import annotations

import itertools
import json
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from gprof.debug.protocol import ProtocolError, decode
from gprof.store.runs import debug_address_path, find_runs

#: for the connection and the server's hello together: a process that accepts and then never
#: answers (stopped, or not a debug server) must not hang ``torch-gprof attach``
CONNECT_TIMEOUT_S = 10.0


class DebugConnectionError(Exception):
    """Cannot reach or talk to a debug server; the message says what to try."""


def resolve_target(target: str, rank: int = 0, token: str | None = None) -> tuple[str, str]:
    """(address, token) from a debug JSON file, a run directory / logdir + rank, or an address
    whose token is ``token`` (read from a token file) or ``GPROF_DEBUG_TOKEN``."""
    p = Path(target)
    if p.is_dir():
        candidates = [debug_address_path(p, rank)]
        candidates += [debug_address_path(r.path, rank) for r in find_runs(p).values()]
        found = [c for c in dict.fromkeys(candidates) if c.is_file()]
        if not found:
            raise DebugConnectionError(
                f"no debug server for rank {rank} under {p} (looked for {debug_address_path('RUN', rank)}); "
                "is the job running with gprof.debug(...) or torch-gprof debug?")
        if len(found) > 1:
            raise DebugConnectionError(f"several runs under {p} have a rank {rank} debug server: "
                                       f"{', '.join(map(str, found))}; pass one of the files")
        p = found[0]
    if p.is_file():
        try:
            info = json.loads(p.read_text())
            return str(info["address"]), str(info["token"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DebugConnectionError(f"{p}: not a torch-gprof debug address file ({e})") from None
    if token is None:
        token = os.environ.get("GPROF_DEBUG_TOKEN")
    if token is None:
        raise DebugConnectionError(
            f"{target!r} is not a file or run directory, so it is read as an address; give its token with "
            "--token-file FILE or the GPROF_DEBUG_TOKEN environment variable (the server wrote it to "
            "debug.rank<R>.json)")
    if not target.startswith("unix:") and ":" not in target:
        raise DebugConnectionError(f"bad address {target!r}: expected HOST:PORT, unix:/path, a debug JSON file, "
                                   "or a run directory")
    return target, token


def _connect(address: str) -> socket.socket:
    try:
        if address.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(CONNECT_TIMEOUT_S)
            s.connect(address[5:])
        else:
            host, _, port = address.rpartition(":")
            s = socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S)
    except (OSError, ValueError) as e:
        raise DebugConnectionError(f"cannot connect to {address}: {e}; is the process still running?") from None
    return s


class DebugClient:
    """One connection; events go to ``on_event`` on a reader thread, requests block for replies."""

    def __init__(self, address: str, token: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.address = address
        self.on_event = on_event or (lambda e: None)
        self._sock = _connect(address)
        self._file = self._sock.makefile("rb")
        self._ids = itertools.count(1)
        self._pending: dict[Any, Future] = {}  # by request id, as the server echoes it
        self._lock = threading.Lock()
        self.closed = False
        self.hello = self._handshake(token)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, name="gprof-debug-client", daemon=True)
        self._reader.start()

    def _handshake(self, token: str) -> dict[str, Any]:
        """Send the token and read the hello, within the socket's connect timeout."""
        try:
            self._send({"token": token})
            line = self._file.readline()
            hello = decode(line) if line else {"event": "error", "error": "the server closed the connection"}
        except TimeoutError:
            hello = {"event": "error", "error": f"no answer within {CONNECT_TIMEOUT_S:g} s; is it a torch-gprof "
                                                "debug server, and is its process running (not stopped)?"}
        except OSError as e:
            hello = {"event": "error", "error": f"lost the connection: {e}"}
        except ProtocolError as e:
            hello = {"event": "error", "error": f"not a torch-gprof debug server (it answered {e})"}
        if hello.get("event") != "hello":
            self._sock.close()
            raise DebugConnectionError(f"{self.address}: {hello.get('error', 'refused')}")
        return hello

    def _send(self, obj: dict[str, Any]) -> None:
        self._sock.sendall((json.dumps(obj) + "\n").encode())

    def _read_loop(self) -> None:
        try:
            for line in self._file:
                msg = decode(line)
                if "event" in msg:
                    self.on_event(msg)
                    continue
                with self._lock:
                    fut = self._pending.pop(msg.get("id"), None)
                if fut is not None:
                    if msg.get("ok"):
                        fut.set_result(msg.get("result"))
                    else:
                        fut.set_exception(DebugCommandError(msg.get("error", "failed")))
        except (OSError, ValueError):
            pass
        self.closed = True
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            fut.set_exception(DebugConnectionError("the debugged process went away"))
        self.on_event({"event": "disconnected"})

    def request(self, cmd: str, timeout: float = 120.0, **kwargs: Any) -> Any:
        if self.closed:
            raise DebugConnectionError("not connected: the debugged process went away")
        rid = next(self._ids)
        fut: Future = Future()
        with self._lock:
            self._pending[rid] = fut
        try:
            self._send({"id": rid, "cmd": cmd, **kwargs})
        except OSError as e:
            raise DebugConnectionError(f"lost the connection: {e}") from None
        return fut.result(timeout)

    def close(self) -> None:
        self.closed = True
        for stop in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._sock.close):
            try:
                stop()
            except OSError:
                pass


class DebugCommandError(Exception):
    """The server rejected a command (bad breakpoint spec, not paused, ...); the text says why."""
