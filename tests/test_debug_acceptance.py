"""Issue 15's acceptance, end to end in a real terminal: plain scripts with no profiler code, run
with ``torch-gprof debug script.py`` and no flags, in tmux. The default anomaly mode must stop
where a NaN from a parameter or from the data first enters the step, naming it, and an exception
inside a step must stop post-mortem at the failing op."""
from __future__ import annotations

import time
from pathlib import Path

from test_debug_tmux import CLI, Tmux, pytestmark  # noqa: F401  (the same skips: tmux, the CLI)

from gprof.store import open_run

MODEL = """
import torch
from torch import nn

torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(8, 8)
        self.linear2 = nn.Linear(8, 8)

    def forward(self, x):
        return self.linear2(torch.relu(self.linear1(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(Block(), Block())
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.encoder(x))


model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.01)
{setup}
for step in range(3):
    x = torch.randn(4, 8)
{batch}
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    print("step", step, "loss", loss.item())
print("done")
"""


def _debug(tmp_path: Path, setup: str = "", batch: str = "") -> tuple[Tmux, Path]:
    script = tmp_path / "train.py"
    script.write_text(MODEL.format(setup=setup, batch=batch))
    done = tmp_path / "done"
    t = Tmux(f"cd {tmp_path} && env -u COLUMNS -u LINES {CLI} debug train.py; touch {done}; sleep 60")
    return t, done


def _quit(t: Tmux, done: Path) -> str:
    t.keys("q")
    deadline = time.monotonic() + 30
    while not done.exists():
        assert time.monotonic() < deadline, t.screen()
        time.sleep(0.2)
    return t.screen()


def test_a_nan_in_a_parameter_stops_where_it_enters(tmp_path: Path) -> None:
    t, done = _debug(tmp_path, setup="model.encoder[1].linear1.weight.data[2, 3] = float('nan')")
    try:
        s = t.wait_all("PAUSED at", "parameter encoder.1.linear1.weight holds NaN at [2, 3]",
                       "module encoder.1.linear1")
        assert "step 0 node" in s  # in the first step, before any NaN flowed anywhere
        assert "train.py" in s  # the source pane and stack show the user's code
        s = _quit(t, done)
        assert "exited with code 0" in s  # detached: the program ran to its end
    finally:
        t.close()


def test_a_nan_in_the_data_stops_at_the_first_op_reading_it(tmp_path: Path) -> None:
    t, done = _debug(tmp_path, batch="    if step == 1:\n        x[3, 7] = float('nan')")
    try:
        s = t.wait_all("PAUSED at", "batch input 0 holds NaN at [3, 7]", "module encoder.0.linear1")
        assert "step 1 node" in s
        _quit(t, done)
    finally:
        t.close()


def test_an_exception_in_the_step_stops_post_mortem(tmp_path: Path) -> None:
    t, done = _debug(tmp_path, batch="    if step == 1:\n        x = torch.randn(4, 5)")
    try:
        s = t.wait_all("POST-MORTEM", "aten.addmm.default", "raised RuntimeError", "module encoder.0.linear1")
        assert "mat1 and mat2 shapes cannot be multiplied" in s
        t.keys("c")  # the exception goes on: the script fails as it would undebugged
        t.wait(r"program finished \(exit code 1\)")
        _quit(t, done)
    finally:
        t.close()
    steps = {f.step: f for f in open_run(tmp_path / "runs" / "train").files()}
    with open_run(tmp_path / "runs" / "train").open(1) as r:
        assert not r.meta.complete and "RuntimeError" in (r.meta.error or "")
    assert sorted(steps) == [0, 1]
