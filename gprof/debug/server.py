"""The debug server: JSON lines over a loopback TCP or Unix socket, guarded by a token.

It runs on its own daemon thread, so a pause on any training thread (main, worker, autograd
device thread) can be driven from a UI in another process. Protocol (one JSON object per line):

* client -> server, first line: ``{"token": "..."}``; anything else closes the connection.
* server -> client: ``{"event": "hello", ...state}``, then events ``paused``/``running``/
  ``step_saved``/``exited`` and replies ``{"id": N, "ok": true, "result": ...}`` or
  ``{"id": N, "ok": false, "error": "..."}``.
* client -> server: ``{"id": N, "cmd": "continue"|"step"|"next"|"finish"|"break_add"|
  "break_enable"|"break_disable"|"break_remove"|"break_edit"|"eval"|"save"|"frame"|"pause"|
  "stop"|"state"|"detach", ...}``. ``eval`` and ``save`` take ``frame`` (0: the innermost user
  frame); ``pause`` pauses at the next op; ``stop`` raises KeyboardInterrupt in the training thread.
* more events: ``breakpoint_error`` (a condition raised), ``breakpoint_warning`` (a breakpoint
  matched nothing in a whole step), each with the breakpoint's description.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from gprof.debug.controller import RESUME_MODES, Debugger
from gprof.debug.protocol import MAX_HELLO_BYTES, ProtocolError, decode

#: one deadline for the whole first line, however slowly its bytes arrive
HELLO_TIMEOUT_S = 5.0
#: connections still owing their token; more are closed at once (each holds a thread for up to
#: HELLO_TIMEOUT_S, and anyone on the machine can open them)
MAX_UNAUTHENTICATED = 16


class DebugServerError(Exception):
    """The server cannot start as asked; the message says what to change."""


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise DebugServerError(
            f"the debug server listens only on loopback or a Unix socket, not {host!r}; use 127.0.0.1:PORT or "
            "unix:/path, and reach remote machines through an SSH tunnel (ssh -L PORT:127.0.0.1:PORT host)")


def write_private_json(path: str | os.PathLike[str], obj: dict[str, Any]) -> Path:
    """Write ``obj`` to ``path`` readable by this user only, atomically.

    The file holds a token, and its directory (a shared logdir) may be writable by others. So the
    temporary file gets a fresh random name, created exclusively, mode 0600 and never through a
    link (``tempfile.mkstemp``), and is renamed over ``path``: a rename replaces a link at ``path``
    rather than writing through it, and nothing planted beside the file is ever opened.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, p)
    except BaseException:
        os.unlink(tmp)
        raise
    return p


def _bind_unix(sock: socket.socket, path: str) -> None:
    """Bind ``sock`` at ``path``, private to the user. Only a stale socket of a server that is
    gone is replaced: any other file at ``path`` (a typo, a symlink, a live server) is an error."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise DebugServerError(f"cannot listen on unix:{path}: a file that is not a socket is there; "
                                   "pick a path that does not exist")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            raise DebugServerError(f"cannot listen on unix:{path}: another server is listening there")
        except ConnectionRefusedError:
            os.unlink(path)  # a socket file nobody listens on: left by a server that died
        finally:
            probe.close()
    old = os.umask(0o177)  # the socket file itself is private to the user
    try:
        sock.bind(path)
    except OSError as e:
        raise DebugServerError(f"cannot listen on unix:{path}: {e}") from None
    finally:
        os.umask(old)


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        self._send_lock = threading.Lock()

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, default=str) + "\n").encode()
        with self._send_lock:
            self.sock.sendall(data)

    def shutdown(self) -> None:
        """Wake a thread blocked reading this connection (it then sees end of file)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class DebugServer:
    def __init__(self, debugger: Debugger, address: str = "127.0.0.1:0", token: str | None = None) -> None:
        self.debugger = debugger
        self.token = token or secrets.token_hex(16)
        self._clients: list[_Conn] = []
        self._lock = threading.Lock()
        self._unauthenticated = threading.BoundedSemaphore(MAX_UNAUTHENTICATED)
        self._closed = False
        self._unix_inode: int | None = None
        if address.startswith("unix:"):
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            _bind_unix(self._sock, address[5:])
            self._unix_inode = os.lstat(address[5:]).st_ino
            self.address = address
        else:
            host, _, port = address.rpartition(":")
            host = host.strip("[]") or "127.0.0.1"
            _check_loopback(host)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self._sock.bind((host, int(port or 0)))
            except (OSError, ValueError) as e:
                raise DebugServerError(f"cannot listen on {address!r}: {e}; pick another port, or port 0 for any") from None
            bound = self._sock.getsockname()
            self.address = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        self._sock.listen(4)
        debugger.listeners.append(self.broadcast)
        self._thread = threading.Thread(target=self._accept_loop, name="gprof-debug-server", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ discovery
    def write_address_file(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        """A 0600 JSON file holding the address and token, for ``torch-gprof attach``."""
        return write_private_json(path, {"address": self.address, "token": self.token, "pid": os.getpid(), **extra})

    # ------------------------------------------------------------------ connections
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            if not self._unauthenticated.acquire(blocking=False):
                sock.close()
                continue
            threading.Thread(target=self._serve, args=(_Conn(sock),), name="gprof-debug-conn", daemon=True).start()

    def _read_hello(self, conn: _Conn) -> dict[str, Any]:
        """The first line, bounded in size, time and depth: before the token is checked, the peer
        may be anyone on the machine. The deadline covers the whole line, not each read."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            conn.shutdown()

        deadline = threading.Timer(HELLO_TIMEOUT_S, expire)
        deadline.start()
        try:
            line = conn.file.readline(MAX_HELLO_BYTES + 1)
        finally:
            deadline.cancel()
            deadline.join()
        if expired.is_set():
            raise ProtocolError(f"no token line within {HELLO_TIMEOUT_S:g} s")
        if not line.endswith(b"\n"):
            raise ProtocolError("the first line is too long" if len(line) > MAX_HELLO_BYTES else "closed")
        return decode(line, max_depth=1)

    def _authenticate(self, conn: _Conn) -> bool:
        try:
            token = self._read_hello(conn).get("token")
        except (OSError, ProtocolError):
            token = None
        finally:
            self._unauthenticated.release()
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            try:
                conn.send({"event": "error", "error": "refused: missing or wrong token"})
            except OSError:
                pass
            return False
        return True

    def _serve(self, conn: _Conn) -> None:
        try:
            if not self._authenticate(conn):
                return
            with self._lock:
                self._clients.append(conn)
            self.debugger.client_attached()
            conn.send({"event": "hello", **self.debugger.state()})
            for line in conn.file:
                try:
                    msg = decode(line)
                except ProtocolError as e:
                    conn.send({"id": None, "ok": False, "error": str(e)})
                    continue
                threading.Thread(target=self._answer, args=(conn, msg), daemon=True).start()
        except OSError:
            pass
        finally:
            with self._lock:
                attached = conn in self._clients
                if attached:
                    self._clients.remove(conn)
            conn.close()
            if attached:
                self.debugger.client_left()

    def _answer(self, conn: _Conn, msg: dict[str, Any]) -> None:
        try:
            reply = {"id": msg.get("id"), "ok": True, "result": self.handle(msg)}
        except Exception as e:  # every failure goes back to the UI as a message
            reply = {"id": msg.get("id"), "ok": False, "error": f"{e}"}
        try:
            conn.send(reply)
        except OSError:
            pass

    def handle(self, msg: dict[str, Any]) -> Any:
        d = self.debugger
        cmd = msg.get("cmd")
        if cmd in RESUME_MODES:
            d.resume(cmd)
            return None
        if cmd == "break_add":
            return d.add_breakpoint(str(msg.get("spec", ""))).describe()
        if cmd in ("break_enable", "break_disable"):
            d.set_enabled(int(msg["bp"]), cmd == "break_enable")
            return None
        if cmd == "break_remove":
            d.remove_breakpoint(int(msg["bp"]))
            return None
        if cmd == "break_edit":
            return d.edit_breakpoint(int(msg["bp"]), str(msg.get("spec", ""))).describe()
        if cmd == "eval":
            return d.evaluate(str(msg["expr"]), int(msg.get("frame", 0)))
        if cmd == "save":
            return d.save_tensor(str(msg["name"]), str(msg["path"]), int(msg.get("frame", 0)))
        if cmd == "frame":
            return d.frame(int(msg.get("frame", 0)))
        if cmd == "pause":
            d.pause_now()
            return None
        if cmd == "stop":
            d.stop()
            return None
        if cmd == "state":
            return d.state()
        if cmd == "detach":
            d.detach()
            return None
        raise ValueError(f"unknown command {cmd!r}")

    def broadcast(self, event: dict[str, Any]) -> None:
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            try:
                c.send(event)
            except OSError:
                pass

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        self._closed = True
        if self.broadcast in self.debugger.listeners:
            self.debugger.listeners.remove(self.broadcast)
        for stop in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._sock.close):
            try:
                stop()
            except OSError:
                pass
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.close()
            self.debugger.client_left()
        if self._unix_inode is not None:
            path = self.address[5:]
            try:
                if os.lstat(path).st_ino == self._unix_inode:  # still ours, not a file put there since
                    os.unlink(path)
            except OSError:
                pass
