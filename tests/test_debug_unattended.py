"""The debugger never hangs training when nobody is there (issue 12, item 6): a pause resumes when
its last client goes, and a hit with no client attached is logged and kept on the node instead
of waited on, unless the user asked to wait. A real training step, a real server, real sockets."""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_debug_server import WorkerRun, reference_digest

import gprof
from examples import nan_example
from examples._harness import train
from gprof.debug import debug

#: an exception on a server or client thread is a failure, not a warning
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _raw_client(address: str, token: str) -> socket.socket:
    """A client as bare as a socket: closing it ends the connection at once, as a killed UI does."""
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(json.dumps({"token": token}).encode() + b"\n")
    assert b'"event": "hello"' in s.recv(65536)
    return s


def test_a_paused_job_resumes_within_5_s_of_its_client_disconnecting(tmp_path: Path) -> None:
    run = WorkerRun(tmp_path, ["nan"])  # wait=True: the hit pauses and waits for a UI
    assert run.session is not None
    ui = _raw_client(run.session.address, run.session.token)
    first = run.wait_paused()
    ui.sendall(b'{"id": 1, "cmd": "step"}\n')  # stepping, too, ends with the client
    while run.session.debugger.paused in (None, first):
        time.sleep(0.02)
    ui.close()  # gone without a detach
    t0 = time.monotonic()
    while run.session.debugger.paused is not None:
        assert time.monotonic() - t0 < 5, "still paused 5 s after the last client went"
        time.sleep(0.02)
    # and the NaN of the next step did not stop it: once its UI has gone, a job waits for none
    assert run.finish() == reference_digest()


def test_an_unattended_hit_is_logged_and_recorded_not_waited_on(tmp_path: Path,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    made = nan_example.make()
    box: dict[str, Any] = {}

    def work() -> None:
        with gprof.profile(logdir=tmp_path, run="alone") as prof:
            session = debug(prof, ["nan", "@attn:forward"], quiet=True)  # the default: nobody need attach
            box["losses"] = train(lambda: made, nan_example.step, profile=prof)
            session.close()
            box["graphs"] = prof.graphs

    th = threading.Thread(target=work, daemon=True)
    th.start()
    th.join(120)
    assert not th.is_alive(), "an unattended breakpoint hung the job"
    assert nan_example.digest(box["losses"], made[0]) == reference_digest()
    err = capfd.readouterr().err
    logged = [line for line in err.splitlines() if "no debugger attached" in line]
    nan_lines = [line for line in logged if "breakpoint 1 (nan)" in line]
    attn_lines = [line for line in logged if "breakpoint 2 (@attn:forward)" in line]
    # step 0: the LayerNorm makes the NaN; step 1: Adam wrote NaN into the parameters, met on first read
    assert len(nan_lines) == 2 and "parameter gain holds Inf" in nan_lines[0], err
    assert "holds NaN at [" in nan_lines[1] and "parameter " in nan_lines[1], err
    assert len(attn_lines) == 2, err  # once per step: a module breakpoint fires on entering the module
    nodes = box["graphs"][0].nodes  # the step's graph in memory (the rows in the file are written earlier)
    hit = {n.idx: n.attrs["breakpoint_hit"] for n in nodes if "breakpoint_hit" in n.attrs}
    [norm] = [n for n in nodes if n.op == "aten.native_layer_norm.default" and n.phase == "forward"]
    assert hit[norm.idx] == {"reason": "breakpoint 1 (nan): new NaN in the output",
                             "origin": "parameter gain holds Inf"}
    attn = [n.idx for n in nodes if (n.module or "").startswith("attn") and n.phase == "forward"]
    assert len(attn) > 2 and hit[attn[0]]["reason"] == "breakpoint 2 (@attn:forward)"
    assert not any(i in hit for i in attn[1:])  # not on the module's later ops
