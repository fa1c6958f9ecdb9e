"""End to end in a real terminal: ``torch-gprof debug examples/nan_example.py`` in tmux, read
with ``capture-pane``. The anomaly pause must name the first NaN-producing op and its module and
show the chain back to the parameter holding the Inf; stepping and continuing must finish the
script with the same result as an undebugged run."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("torch-gprof")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/system-deps.sh installs it)"),
    pytest.mark.skipif(not CLI.exists(), reason=f"{CLI} missing: pip install -e . puts the torch-gprof script there"),
]


class Tmux:
    def __init__(self, command: str) -> None:
        self.name = f"gprof-{uuid.uuid4().hex[:8]}"
        # a private server (-L) with no user config (-f), so the size and keys are ours
        self.tmux = ["tmux", "-L", self.name, "-f", "/dev/null"]
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", "200", "-y", "50", command], check=True)
        subprocess.run([*self.tmux, "resize-window", "-t", self.name, "-x", "200", "-y", "50"], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def wait(self, pattern: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if re.search(pattern, s):
                return s
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never appeared; screen:\n{self.screen()}")

    def wait_all(self, *texts: str, timeout: float = 90) -> str:
        """The screen once every text is on it: Textual paints a pane's widgets one refresh at a time."""
        return self.wait("(?s)" + "".join(f"(?=.*{re.escape(t)})" for t in texts), timeout)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def test_debug_nan_example_in_tmux(tmp_path: Path) -> None:
    expected = subprocess.run([sys.executable, "examples/nan_example.py", "--no-profile"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=True).stdout
    result = re.search(r"nan_example result: .*", expected)
    assert result is not None
    done = tmp_path / "done"
    # COLUMNS/LINES from pytest's environment would pin Textual to 80x24 inside the pane
    t = Tmux(f"cd {ROOT} && env -u COLUMNS -u LINES {CLI} debug examples/nan_example.py --logdir {tmp_path} --run e2e; "
             f"touch {done}; sleep 60")
    try:
        t.wait(r"PAUSED at aten\.native_layer_norm\.default in norm \(forward\)")
        # the op and module shown, and the chain back to where the non-finite values entered
        s = t.wait_all("op     aten.native_layer_norm.default", "module norm   phase forward", "aten.mul.Tensor",
                       "parameter gain holds Inf", "new NaN in the output")
        assert re.search(r"#\d+ aten\.native_layer_norm\.default\s+module norm\s+forward\s+makes NaN", s)
        t.keys("s")
        t.wait(r"PAUSED step 0 node #\d+: step")
        t.keys("c")
        # step 0's NaN loss made Adam write NaN into every parameter: step 1 stops at the first read
        t.wait_all("PAUSED step 1", "parameter attn.qkv.weight holds NaN at [0, 0]")
        t.keys("c")
        s = t.wait(r"program finished \(exit code 0\)")
        assert result.group(0) in s  # the log pane shows the script's output
        t.keys("q")
        deadline = time.monotonic() + 30
        while not done.exists():
            assert time.monotonic() < deadline, t.screen()
            time.sleep(0.2)
        s = t.screen()
        assert result.group(0) in s  # printed again after the UI closed: bit-identical digest
        assert "exited with code 0" in s
    finally:
        t.close()

