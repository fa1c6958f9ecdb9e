"""The debugged program for ``torch-gprof debug``: a child process running the script under
``gprof.debug.runner``, its output collected line by line for the log pane."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gprof.debug.client import DebugConnectionError, resolve_target


class DebuggedScript:
    def __init__(self, script: str, args: Sequence[str], breaks: Sequence[str], *, wrap: bool | None = None,
                 logdir: str = "runs", run: str | None = None, address: str = "127.0.0.1:0") -> None:
        self._dir = tempfile.mkdtemp(prefix="gprof-debug-")  # 0700: the token stays private
        self.address_file = Path(self._dir) / "debug.json"
        cmd = [sys.executable, "-u", "-m", "gprof.debug.runner", "--address-file", str(self.address_file),
               "--address", address, "--logdir", logdir]
        for b in breaks:
            cmd += ["--break", b]
        if wrap is not None:  # None: the runner decides (gprof/debug/runner.py)
            cmd.append("--wrap" if wrap else "--no-wrap")
        if run is not None:
            cmd += ["--run", run]
        cmd += [script, *args]
        self.lines: list[str] = []
        self.on_line: Callable[[str], None] = lambda line: None
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._reader = threading.Thread(target=self._pump, name="gprof-debug-output", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
                sink = self.on_line
            sink(line)

    def redirect(self, sink: Callable[[str], None]) -> list[str]:
        """Send later lines to ``sink``; returns the lines so far (so none is lost or doubled)."""
        with self._lock:
            self.on_line = sink
            return list(self.lines)

    def wait_for_server(self, timeout: float = 120.0) -> tuple[str, str]:
        """(address, token) once the child's server is up; raises if the child dies first."""
        deadline = time.monotonic() + timeout
        while not self.address_file.is_file():
            if self.proc.poll() is not None:
                raise DebugConnectionError(f"the script exited (code {self.proc.returncode}) before its debug "
                                           "server started; see its output above")
            if time.monotonic() > deadline:
                raise DebugConnectionError(f"no debug server after {timeout:.0f} s")
            time.sleep(0.05)
        return resolve_target(str(self.address_file))

    def finish(self) -> int:
        code = self.proc.wait()
        self._reader.join(5)
        self.address_file.unlink(missing_ok=True)
        try:
            os.rmdir(self._dir)
        except OSError:
            pass
        return code
