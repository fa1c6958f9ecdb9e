"""The step worker from a notebook (issue 17): cells are code run in a ``__main__`` without a file
(as Jupyter runs them), with the ``spawn`` start method set; every step of two profiles is written,
by one worker, and no cell runs twice."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from gprof.store import open_run
from tests.conftest import ROOT

_CELLS = [
    f"""
import multiprocessing as mp
import sys
sys.path.insert(0, {str(ROOT)!r})
mp.set_start_method("spawn", force=True)
import torch
import gprof
from gprof.capture.worker import StepWorker

def train(prof, steps):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        model(torch.randn(4, 8)).sum().backward()
        opt.step()
        opt.zero_grad()
        prof.step()
print("cell 1 ran", flush=True)
""",
    """
with gprof.profile(LOGDIR, run="nb1") as prof:
    assert prof.session.queue is not None, "handed off to the worker"
    train(prof, 3)
first_worker = StepWorker.shared().proc.pid
print("cell 2:", [g.meta.step for g in prof.graphs], flush=True)
""",
    """
StepWorker.shared().collect(timeout=None)  # the worker is up: it builds this cell's steps
with gprof.profile(LOGDIR, run="nb2") as prof:
    train(prof, 4)
assert StepWorker.shared().proc.pid == first_worker, "one worker for the notebook's profiles"
print("cell 3:", [g.meta.step for g in prof.graphs], flush=True)
""",
]

_KERNEL = textwrap.dedent("""
    import sys
    import __main__
    assert not hasattr(__main__, "__file__"), "a notebook's __main__ has no file"
    __main__.LOGDIR = sys.argv[1]
    for i, cell in enumerate(CELLS):
        exec(compile(cell, f"<ipython-input-{i + 1}>", "exec"), __main__.__dict__)
    """)


def test_profiles_in_notebook_cells_write_every_step(tmp_path) -> None:
    kernel = f"CELLS = {_CELLS!r}\n{_KERNEL}"
    done = subprocess.run([sys.executable, "-c", kernel, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("cell 1 ran") == 1, done.stdout
    assert "cell 2: [0, 1, 2]" in done.stdout and "cell 3: [0, 1, 2, 3]" in done.stdout, done.stdout
    assert open_run(tmp_path / "nb1").steps() == [0, 1, 2]
    assert open_run(tmp_path / "nb2").steps() == [0, 1, 2, 3]
