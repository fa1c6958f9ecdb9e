"""The debug server: JSON lines over a loopback TCP or Unix socket, guarded by a token.

It runs on its own daemon thread, so a pause on any training thread (main, worker, autograd
device thread) can be driven from a UI in another process. Protocol (one JSON object per line):

* client -> server, first line: ``{"token": "..."}``; anything else closes the connection.
* server -> client: ``{"event": "hello", ...state}``, then events ``paused``/``running``/
  ``step_saved``/``exited`` and replies ``{"id": N, "ok": true, "result": ...}`` or
  ``{"id": N, "ok": false, "error": "..."}``.
* client -> server: ``{"id": N, "cmd": "continue"|"step"|"next"|"finish"|"break_add"|
  "break_enable"|"break_disable"|"break_remove"|"eval"|"save"|"state"|"detach", ...}``.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

from gprof.debug.controller import RESUME_MODES, Debugger

HELLO_TIMEOUT_S = 5.0


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


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        self._send_lock = threading.Lock()

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, default=str) + "\n").encode()
        with self._send_lock:
            self.sock.sendall(data)

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
        self._closed = False
        if address.startswith("unix:"):
            path = address[5:]
            if os.path.exists(path):
                os.unlink(path)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)  # the socket file itself is private to the user
            try:
                self._sock.bind(path)
            finally:
                os.umask(old)
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
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"address": self.address, "token": self.token, "pid": os.getpid(), **extra}, f)
        os.replace(tmp, p)
        return p

    # ------------------------------------------------------------------ connections
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(_Conn(sock),), name="gprof-debug-conn", daemon=True).start()

    def _authenticate(self, conn: _Conn) -> bool:
        conn.sock.settimeout(HELLO_TIMEOUT_S)
        try:
            line = conn.file.readline()
            token = json.loads(line).get("token") if line else None
        except (OSError, ValueError, AttributeError):
            token = None
        conn.sock.settimeout(None)
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
            conn.send({"event": "hello", **self.debugger.state()})
            for line in conn.file:
                try:
                    msg = json.loads(line)
                except ValueError:
                    conn.send({"id": None, "ok": False, "error": "not JSON"})
                    continue
                threading.Thread(target=self._answer, args=(conn, msg), daemon=True).start()
        except OSError:
            pass
        finally:
            with self._lock:
                if conn in self._clients:
                    self._clients.remove(conn)
            conn.close()

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
        if cmd == "eval":
            return d.evaluate(str(msg["expr"]))
        if cmd == "save":
            return d.save_tensor(str(msg["name"]), str(msg["path"]))
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
            for c in self._clients:
                c.close()
            self._clients = []
        if self.address.startswith("unix:"):
            try:
                os.unlink(self.address[5:])
            except OSError:
                pass
