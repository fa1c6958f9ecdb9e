"""A plain training script under the debugger, never paused, trains bit-identically to the same script
run plainly. Both are real processes: ``python script.py`` and the child ``torch-gprof debug``
starts (``python -m gprof.debug.runner``, which records the whole script, one step per optimizer
step, with the default anomaly checks and a breakpoint that never hits). The script saves its
parameters, optimizer state and losses; they are compared with ``torch.equal``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gprof.store import open_run

#: dropout and a random batch each step: a debugger that drew from the RNG, copied into a user
#: tensor or changed an op's result would show in the parameters or the losses
SCRIPT = """
import sys
import torch
from torch import nn

torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Dropout(0.1), nn.LayerNorm(32), nn.Linear(32, 4))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
losses = []
for step in range(4):
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    losses.append(loss.detach())
torch.save({"model": model.state_dict(), "opt": opt.state_dict()["state"], "losses": torch.stack(losses)},
           sys.argv[1])
print("saved", sys.argv[1])
"""


def _tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nest of dicts, by its path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    assert isinstance(obj, dict), f"{prefix}: {type(obj).__name__}"
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        out.update(_tensors(v, f"{prefix}/{k}"))
    return out


@pytest.mark.slow
def test_an_unpaused_debugged_script_trains_bit_identically(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    plain, debugged = tmp_path / "plain.pt", tmp_path / "debugged.pt"
    subprocess.run([sys.executable, str(script), str(plain)], check=True, capture_output=True, timeout=120)
    # the defaults of `torch-gprof debug script.py` (anomaly mode, the UI awaited at a hit), plus
    # a breakpoint that is checked on every op and never matches
    out = subprocess.run(
        [sys.executable, "-m", "gprof.debug.runner", "--address-file", str(tmp_path / "debug.json"),
         "--logdir", str(tmp_path / "runs"), "--break", "nan", "--break", "absmax > 1e30",
         str(script), str(debugged)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "breakpoint" not in out.stdout + out.stderr  # nothing hit: it never waited for a UI
    # it was recorded and debugged: one step per optimizer step
    assert [f.step for f in open_run(tmp_path / "runs" / "train").files()][:4] == [0, 1, 2, 3]
    a, b = _tensors(torch.load(plain)), _tensors(torch.load(debugged))
    assert a.keys() == b.keys() and len(a) > 10 and "/losses" in a
    unequal = [k for k in a if not (a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]))]
    assert not unequal, f"differ under the debugger: {unequal}"
