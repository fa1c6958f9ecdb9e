"""The live debugger without a UI: pauses on a worker thread, anomaly provenance, the token and
loopback guards, and finding a server from a run directory. Everything runs for real: a real
training step, a real socket, a real second thread."""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import gprof
from examples import nan_example
from examples._harness import train
from gprof.debug import DebugClient, DebugConnectionError, DebugServerError, DebugSession, debug, resolve_target
from gprof.debug.controller import Debugger
from gprof.debug.server import DebugServer

#: an exception on a UI, client or server thread is a failure, not a warning
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


class WorkerRun:
    """nan_example trained on a worker thread under gprof.profile + a debug session. With ``wait``
    (the default here), a hit pauses before any client has attached, as under torch-gprof debug."""

    def __init__(self, logdir: Path, breaks: list[str], wait: bool = True) -> None:
        self.made = nan_example.make()
        self.losses: list[float] | None = None
        self.error: BaseException | None = None
        self.thread_name = "trainer"
        self._ready = threading.Event()
        self.session: DebugSession | None = None
        self.thread = threading.Thread(target=self._work, args=(logdir, breaks, wait), name=self.thread_name,
                                       daemon=True)
        self.thread.start()
        assert self._ready.wait(60), "the debug server did not start"

    def _work(self, logdir: Path, breaks: list[str], wait: bool) -> None:
        try:
            with gprof.profile(logdir=logdir, run="worker") as prof:
                self.session = DebugSession(breaks, wait=wait)
                self.session.observe(prof)
                self._ready.set()
                self.losses = train(lambda: self.made, nan_example.step, profile=prof)
        except BaseException as e:  # surfaced by finish()
            self.error = e
            self._ready.set()

    def wait_paused(self, timeout: float = 60) -> dict[str, Any]:
        assert self.session is not None
        deadline = time.monotonic() + timeout
        while self.session.debugger.paused is None:
            assert self.thread.is_alive(), f"the step ended without pausing ({self.error})"
            assert time.monotonic() < deadline, "no pause"
            time.sleep(0.02)
        return self.session.debugger.paused

    def finish(self) -> str:
        self.thread.join(120)
        assert not self.thread.is_alive(), "the training thread did not finish after continue"
        assert self.error is None, self.error
        assert self.session is not None
        self.session.close()
        assert self.losses is not None
        return nan_example.digest(self.losses, self.made[0])


def reference_digest() -> str:
    made = nan_example.make()
    losses = train(lambda: made, nan_example.step)
    return nan_example.digest(losses, made[0])


def test_worker_thread_pause_step_continue_is_bit_identical(tmp_path: Path) -> None:
    run = WorkerRun(tmp_path, ["nan"])
    assert run.session is not None
    events: list[dict[str, Any]] = []
    client = DebugClient(run.session.address, run.session.token, on_event=events.append)
    p = run.wait_paused()
    # the anomaly pause: first NaN producer, on the worker thread, with the chain to the parameter
    assert p["thread"] == "trainer" and not p["main_thread"]
    assert (p["op"], p["module"], p["phase"]) == ("aten.native_layer_norm.default", "norm", "forward")
    assert [c["op"] for c in p["chain"]] == ["aten.native_layer_norm.default", "aten.mul.Tensor"]
    assert p["chain"][-1]["origin"] == "parameter gain holds Inf"
    assert p["outputs"][0]["nan"] == 4 * 6 * 16 and p["inputs"][0]["inf"] > 0 and p["inputs"][0]["nan"] == 0
    assert any("nan_example.py" in f and "forward" in f for f in p["stack"])
    # evaluate and save run on the paused thread, on the live tensors
    assert client.request("eval", expr="int(out.isnan().sum())")["repr"] == str(4 * 6 * 16)
    saved = client.request("save", name="in0", path=str(tmp_path / "in0.pt"))
    assert torch.load(saved).isinf().any()
    with pytest.raises(Exception, match="not a tensor"):
        client.request("save", name="1 + 1", path=str(tmp_path / "x.pt"))
    client.request("step")
    p2 = _next_pause(run, p)
    assert p2["idx"] == p["idx"] + 1 and p2["reason"] == "step"
    client.request("next")  # step over the rest of this module
    p3 = _next_pause(run, p2)
    assert p3["module"] != p2["module"]
    client.request("continue")
    # step 0's NaN loss made Adam write NaN into the parameters: step 1 meets them on first read
    p4 = _next_pause(run, p3)
    assert p4["step"] == 1 and "holds NaN at [" in p4["reason"] and p4["reason"].split(": ")[1].startswith("parameter ")
    assert p4["chain"][-1]["origin"].startswith("parameter ")
    client.request("continue")
    assert run.finish() == reference_digest()
    assert "paused" in {e["event"] for e in events} and "step_saved" in {e["event"] for e in events}
    client.close()


def _next_pause(run: WorkerRun, after: dict[str, Any]) -> dict[str, Any]:
    assert run.session is not None
    deadline = time.monotonic() + 60
    while True:
        p = run.session.debugger.paused
        if p is not None and p is not after:
            return p
        assert time.monotonic() < deadline, "no next pause"
        time.sleep(0.02)


def test_inf_is_opt_in_and_the_attention_mask_stops_it(tmp_path: Path) -> None:
    """With 'inf' the -inf mask (attn) is the first hit; the default 'nan' run skipped it (above)."""
    run = WorkerRun(tmp_path, ["inf"])
    assert run.session is not None
    p = run.wait_paused()
    assert p["module"] == "attn" and p["op"] == "aten.full.default"
    assert p["chain"][0]["origin"] == "aten.full.default turned finite inputs into Inf"
    run.session.debugger.detach()
    assert run.finish() == reference_digest()


def test_breakpoint_commands_and_end_of_step(tmp_path: Path) -> None:
    run = WorkerRun(tmp_path, ["@proj:forward"])
    assert run.session is not None
    client = DebugClient(run.session.address, run.session.token)
    p = run.wait_paused()
    assert p["module"] == "proj"
    bp = client.request("break_add", spec="@head if absmax > 0")
    with pytest.raises(Exception, match="unknown op"):
        client.request("break_add", spec="nosuchop_zz")
    client.request("break_disable", bp=1)
    client.request("continue")
    p2 = _next_pause(run, p)
    assert p2["module"] == "head" and p2["reason"].startswith(f"breakpoint {bp['id']}")
    client.request("break_disable", bp=bp["id"])
    client.request("finish")
    p3 = _next_pause(run, p2)
    assert p3["idx"] is None and p3["reason"].startswith("end of step 0")
    assert [b["enabled"] for b in client.request("state")["breakpoints"]] == [False, False]
    client.request("continue")
    assert run.finish() == reference_digest()
    client.close()


def test_connection_without_the_token_is_refused(tmp_path: Path) -> None:
    server = DebugServer(Debugger(["nan"]))
    try:
        host, port = server.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:  # no token at all
            s.sendall(b'{"id": 1, "cmd": "continue"}\n')
            reply = json.loads(s.makefile().readline())
            assert reply == {"event": "error", "error": "refused: missing or wrong token"}
            assert s.recv(100) == b""  # and closed
        with pytest.raises(DebugConnectionError, match="wrong token"):
            DebugClient(server.address, "0" * 32)
        assert server.client_count == 0
        ok = DebugClient(server.address, server.token)
        assert ok.request("state")["breakpoints"][0]["spec"] == "nan"
        ok.close()
    finally:
        server.close()


def test_server_listens_only_on_loopback_or_unix_socket(tmp_path: Path) -> None:
    with pytest.raises(DebugServerError, match="only on loopback"):
        DebugServer(Debugger(), "0.0.0.0:0")
    sock = tmp_path / "dbg.sock"
    server = DebugServer(Debugger(), f"unix:{sock}")
    try:
        assert stat.S_IMODE(os.stat(sock).st_mode) & 0o077 == 0
        c = DebugClient(server.address, server.token)
        assert c.request("state")["paused"] is None
        c.close()
    finally:
        server.close()


def test_attach_finds_a_rank_by_run_directory(tmp_path: Path) -> None:
    with gprof.profile(logdir=tmp_path, run="job", rank=1, world_size=2) as prof:
        session = debug(prof, ["nan"], quiet=True)
        f = tmp_path / "job" / "plugins" / "gprof" / "debug.rank1.json"
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert resolve_target(str(tmp_path / "job"), rank=1) == (session.address, session.token)
        assert resolve_target(str(tmp_path), rank=1) == (session.address, session.token)
        assert resolve_target(str(f)) == (session.address, session.token)
        with pytest.raises(DebugConnectionError, match="no debug server for rank 0"):
            resolve_target(str(tmp_path / "job"), rank=0)
        with pytest.raises(DebugConnectionError, match="GPROF_DEBUG_TOKEN"):
            resolve_target(session.address)
        session.close()
    assert not f.exists()


class SqrtAtZero(torch.nn.Module):
    """Finite forward, NaN in backward: d sqrt(x)/dx at 0 is Inf, times a zero gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.sqrt() * 0).sum()


def test_anomaly_in_backward_pauses_with_its_forward_partner(tmp_path: Path) -> None:
    model = torch.nn.Sequential(SqrtAtZero())
    x = torch.zeros(4, requires_grad=True)
    ready = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        with gprof.profile(logdir=tmp_path, run="bwd") as prof:
            box["session"] = session = DebugSession(["nan"], wait=True)  # pauses with no UI attached
            session.observe(prof)
            ready.set()
            model(x).backward()

    th = threading.Thread(target=work, daemon=True)
    th.start()
    assert ready.wait(30)
    session: DebugSession = box["session"]
    deadline = time.monotonic() + 30
    while session.debugger.paused is None:
        assert th.is_alive() and time.monotonic() < deadline, "no backward pause"
        time.sleep(0.02)
    p = session.debugger.paused
    assert p["phase"] == "backward" and p["module"] == "0"
    assert p["fwd"] is not None and p["fwd"]["op"] == "aten.sqrt.default"
    # sqrt's backward divides the zero gradient by 2*sqrt(0) = 0: NaN from finite inputs
    assert p["op"] == "aten.div.Tensor"
    assert p["chain"] == [{**p["chain"][0], "origin": "aten.div.Tensor turned finite inputs into NaN"}]
    session.debugger.resume("continue")
    th.join(30)
    assert not th.is_alive()
    session.close()
    assert x.grad is not None and x.grad.isnan().all()
