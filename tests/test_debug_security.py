"""The debug server against a hostile local user and an unlucky one (issue 12, items 1, 2, 4 and
the attach part of 12): no token on a command line, a bounded hello, safe files, an attach that
gives up clearly. Real servers on real sockets; the hostile peer is a raw socket."""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gprof.cli import main
from gprof.debug import DebugClient, DebugServerError, resolve_target
from gprof.debug import client as client_mod
from gprof.debug import server as server_mod
from gprof.debug.controller import Debugger
from gprof.debug.protocol import MAX_HELLO_BYTES
from gprof.debug.server import MAX_UNAUTHENTICATED, DebugServer
from gprof.store.runs import debug_address_path

#: an exception on a server or client thread is a failure, not a warning
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture
def server() -> Iterator[DebugServer]:
    s = DebugServer(Debugger(["nan"]))
    yield s
    s.close()


def _raw(server: DebugServer) -> socket.socket:
    host, port = server.address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_within(s: socket.socket, seconds: float) -> float:
    """Read until the server ends the connection; returns how long that took."""
    t0 = time.monotonic()
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        pass
    return time.monotonic() - t0


# ---------------------------------------------------------------- 1: no secret on a command line
def test_attach_has_no_token_option(server: DebugServer, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["attach", server.address, "--token", server.token])
    assert e.value.code == 2 and "unrecognized arguments: --token" in capsys.readouterr().err


def test_a_bare_address_takes_its_token_from_the_environment_or_a_file(
        server: DebugServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPROF_DEBUG_TOKEN", server.token)
    assert resolve_target(server.address) == (server.address, server.token)
    monkeypatch.delenv("GPROF_DEBUG_TOKEN")
    assert resolve_target(server.address, token=server.token) == (server.address, server.token)


def test_debugged_child_gets_no_token_on_its_command_line(tmp_path: Path) -> None:
    from gprof_tui.child import DebuggedScript

    script = tmp_path / "idle.py"
    script.write_text("import time\ntime.sleep(30)\n")
    child = DebuggedScript(str(script), [], [])
    try:
        _, token = child.wait_for_server(60)
        cmdline = Path(f"/proc/{child.proc.pid}/cmdline").read_bytes().decode()
        assert token not in cmdline
    finally:
        child.proc.kill()
        child.finish()


# ---------------------------------------------------------------- 2: the hello is bounded
def test_an_endless_first_line_is_cut_at_the_size_limit(server: DebugServer) -> None:
    s = _raw(server)
    s.sendall(b"a" * (MAX_HELLO_BYTES * 16))  # no newline: the old server read on until one came
    assert _closed_within(s, 2.0) < 2.0
    s.close()
    assert server.client_count == 0


def test_one_deadline_for_the_whole_hello(server: DebugServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "HELLO_TIMEOUT_S", 1.0)
    s = _raw(server)
    t0 = time.monotonic()
    s.settimeout(0.3)
    closed = False
    while time.monotonic() - t0 < 4.0:  # a byte every 0.3 s used to restart the timeout each time
        try:
            s.sendall(b" ")
            if s.recv(100) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    assert closed and time.monotonic() - t0 < 2.5
    s.close()


def test_deep_json_is_refused_without_a_traceback(server: DebugServer, capfd: pytest.CaptureFixture[str]) -> None:
    for hello in (b"[" * 4000 + b"\n", b'{"token": [[["x"]]]}\n', b"[1, 2]\n", b"\xff\n"):
        s = _raw(server)
        s.sendall(hello)
        reply = json.loads(s.makefile("rb").readline())
        assert reply == {"event": "error", "error": "refused: missing or wrong token"}
        s.close()
    c = DebugClient(server.address, server.token)  # and after authentication, too
    c._sock.sendall(b"[" * 4000 + b"\n" + b"[1]\n")
    assert c.request("state")["breakpoints"][0]["spec"] == "nan"
    c.close()
    time.sleep(0.2)
    assert "Traceback" not in capfd.readouterr().err


def test_idle_unauthenticated_connections_are_capped(server: DebugServer) -> None:
    idle = [_raw(server) for _ in range(MAX_UNAUTHENTICATED)]
    time.sleep(0.3)
    extra = _raw(server)
    assert _closed_within(extra, 2.0) < 2.0
    for s in [*idle, extra]:
        s.close()
    deadline = time.monotonic() + 10  # the idle ones' threads end, and a client gets in again
    while True:
        try:
            DebugClient(server.address, server.token).close()
            break
        except Exception:
            assert time.monotonic() < deadline
            time.sleep(0.1)


# ---------------------------------------------------------------- 4: files
def test_unix_socket_never_replaces_a_file_that_is_not_a_stale_socket(tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.sock"
    link.symlink_to(victim)
    for path in (victim, link):
        with pytest.raises(DebugServerError, match="not a socket"):
            DebugServer(Debugger(), f"unix:{path}")
    assert victim.read_text() == "keep me" and link.is_symlink()

    live = DebugServer(Debugger(), f"unix:{tmp_path / 'live.sock'}")
    try:
        with pytest.raises(DebugServerError, match="another server"):
            DebugServer(Debugger(), f"unix:{tmp_path / 'live.sock'}")
    finally:
        live.close()

    stale = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # a server that died: its socket file stays
    s = DebugServer(Debugger(), f"unix:{stale}")
    os.unlink(stale)
    stale.write_text("put here after the server started")
    s.close()
    assert stale.read_text() == "put here after the server started"


@pytest.mark.parametrize("planted", ["world-readable tmp", "symlinked tmp"])
def test_address_file_is_private_whatever_is_planted_beside_it(server: DebugServer, tmp_path: Path,
                                                                planted: str) -> None:
    path = debug_address_path(tmp_path / "run", 0)
    path.parent.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    tmp = path.with_name(path.name + ".tmp")  # the name the old writer used
    if planted == "symlinked tmp":
        tmp.symlink_to(victim)
    else:
        tmp.write_text("")
        tmp.chmod(0o644)
    old = os.umask(0)
    try:
        server.write_address_file(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600 and not path.is_symlink()
    assert json.loads(path.read_text())["token"] == server.token
    assert victim.read_text() == "untouched"
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == [tmp.name]


# ---------------------------------------------------------------- 12: attach gives up clearly
def test_attach_to_a_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(1)  # connects succeed; nothing is ever read or sent
    monkeypatch.setattr(client_mod, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setenv("GPROF_DEBUG_TOKEN", "x")
    t0 = time.monotonic()
    assert main(["attach", f"127.0.0.1:{mute.getsockname()[1]}"]) == 2
    assert time.monotonic() - t0 < 5
    err = capsys.readouterr().err
    assert "no answer within 1 s" in err and "Traceback" not in err
    mute.close()


def test_attach_to_a_server_answering_a_json_list_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    odd = socket.socket()
    odd.bind(("127.0.0.1", 0))
    odd.listen(1)

    def answer() -> None:
        conn, _ = odd.accept()
        conn.makefile("rb").readline()
        conn.sendall(b"[1, 2]\n")
        time.sleep(1)
        conn.close()

    th = threading.Thread(target=answer, daemon=True)
    th.start()
    monkeypatch.setenv("GPROF_DEBUG_TOKEN", "x")
    assert main(["attach", f"127.0.0.1:{odd.getsockname()[1]}"]) == 2
    err = capsys.readouterr().err
    assert "not a torch-gprof debug server" in err and "Traceback" not in err
    th.join(5)
    odd.close()
