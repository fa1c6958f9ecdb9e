"""``torch-gprof verify`` / ``gprof.verify`` against real torch.compile (Inductor on CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import gprof.verify as gv
from gprof.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gprof", "verify", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_dynamic_example_regions_compile_without_breaks():
    """Acceptance: every suggested region compiles with 0 graph breaks, and every break Dynamo
    reports for the whole model is in the hazard list."""
    p = _cli("examples/dynamic.py", "--json", "--repeats", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    whole = report["whole_model"]
    assert whole["graph_breaks"] >= 2
    assert whole["all_breaks_in_hazards"], whole["break_reasons"]
    assert report["regions"]
    for r in report["regions"]:
        assert r["graph_breaks"] == 0 and r["graph_count"] == 1, r
        assert r["kernels"]["generated"] > 0
        assert r["eager_ns"] > 0 and r["compiled_ns"] > 0
    assert report["verdict"].startswith(("compiled is slower", "compiled is faster", "no measurable"))


def test_script_without_make_and_step_is_refused(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("x = 1\n")
    with pytest.raises(SystemExit, match="must define make"):
        cli(["verify", str(script)])


def test_missing_script_is_refused():
    with pytest.raises(SystemExit, match="no such file"):
        cli(["verify", "no/such/file.py"])


def test_unknown_module_is_refused_before_compiling():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="'encoder' is not in this model"):
        gv.verify(model, lambda m, b: m(b).sum().backward(), torch.randn(2, 4), ["encoder"])


def test_kernel_counting_reads_launches_not_definitions():
    code = ("cpp_fused_relu_0 = async_compile.cpp_pybinding(['float*'], r'''...''')\n"
            "def call(self, args):\n"
            "        extern_kernels.addmm(a, b, c, out=buf0)\n"
            "        cpp_fused_relu_0(buf1)\n"
            "        extern_kernels.addmm(a, buf1, c, out=buf2)\n"
            "        cpp_fused_relu_0(buf3)\n")
    assert gv.count_kernels([code]) == {"generated": 2, "extern": 2}


def test_verdict_says_slower_honestly():
    assert gv.verdict(0.8).startswith("compiled is slower on this machine")
    assert gv.verdict(1.5).startswith("compiled is faster")


def test_no_suggestion_means_nothing_to_compile():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    report = gv.verify(model, lambda m, b: m(b).sum().backward(), torch.randn(2, 4), [], hazards=[])
    assert report["regions"] == [] and report["verdict"].startswith("nothing to compile")
    assert report["whole_model"]["graph_breaks"] == 0 and report["whole_model"]["all_breaks_in_hazards"]
    assert "nothing to compile" in gv.format_report(report)


def test_a_pytorch_container_region_is_really_compiled() -> None:
    """In place, this torch leaves nn.Sequential eager; verify swaps in torch.compile(module), as the
    snippet says, and puts the original back."""
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.seq = nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16))
            self.head = nn.Linear(16, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.seq(x)).pow(2).mean()

    model = Net()
    seq = model.seq

    def step(m: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        loss = m(batch)
        loss.backward()
        return loss

    report = gv.verify(model, step, torch.randn(8, 16), suggestions=["seq"], repeats=1)
    (region,) = report["regions"]
    assert region["kernels"]["generated"] >= 1, region
    assert model.seq is seq, "the eager module is back in place after verify"


def test_predicted_saving_adds_dispatch_and_charges_kernels_and_slower_generated_loops():
    costs = {"op_ns": 3_000.0, "kernel_ns": 5_000.0, "ratio": {"pointwise": 1.5, "softmax": 1.0}}
    # fusion 10 us + 100 ops x 3 us - 20 kernels x 5 us - 1 call x 80 us
    # - pointwise (1,300 us less its share, 3/4, of the 300 us per-op cost) x 0.5; softmax at 1.0x costs nothing
    work = {"ops": 100, "kernels": 20, "generated_ns": {"pointwise": 1_200_000, "softmax": 400_000}}
    assert gv.predicted_saving(10_000, 1, work, 80_000, costs) == round(
        10_000 + 300_000 - 100_000 - 80_000 - (1_200_000 - 225_000) * 0.5)
    # no recorded step (suggestions given by name): fusion less the compiled-call cost only
    assert gv.predicted_saving(10_000, 2, None, 80_000, costs) == 10_000 - 160_000
    assert gv.probe_class("native_batch_norm_backward") == "batch_norm"
    assert gv.probe_class("bernoulli_") == "dropout" and gv.probe_class("relu") == "pointwise"
