"""Re-targeting a stored step (issue 16): ``report --target``, ``gprof.profile(target=)`` and the read
layer's ``analyses_for``, which re-run the fusion prediction from the step file without torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gprof
from gprof.analyses import run_all
from gprof.store import StepReader, open_run
from gprof.store.queries.retarget import analyses_for

ROOT = Path(__file__).resolve().parent.parent
OLD_RUN = ROOT / "tests" / "data" / "report_golden" / "logdir" / "transformer"  # written before op facts
KERNEL_COUNTS = ("predicted_kernels", "generated_kernels", "extern_kernels", "eager_kernels")
#: runs the CLI in a fresh interpreter where importing torch fails, and checks nothing imported it
NO_TORCH_CLI = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
from gprof.cli import main
rc = main(sys.argv[1:])
assert "torch" not in sys.modules, "torch imported"
sys.exit(rc)
"""


def _train(logdir: Path, run: str, **kw: object) -> Path:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.LayerNorm(64),
                                torch.nn.Linear(64, 8))
    opt = torch.optim.Adam(model.parameters())
    with gprof.profile(logdir=logdir, run=run, **kw) as prof:
        for _ in range(2):
            model(torch.randn(16, 32)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            prof.step()
    return prof.run_dir


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run recorded with this torch-gprof (op facts stored), analysed for its device (cpu)."""
    return _train(tmp_path_factory.mktemp("retarget"), "tiny", worker=False)


def _cli_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", NO_TORCH_CLI, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_report_target_cuda_without_torch_matches_run_all(recorded: Path) -> None:
    r = _cli_without_torch("report", str(recorded), "--target", "cuda", "--json")
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["steps"]
    files = open_run(recorded).files()
    assert len(steps) == len(files) == 2
    for s, f in zip(steps, files, strict=True):
        with StepReader(f.path) as reader:
            assert reader.op_facts(), "the writer stores the step's op facts"
            assert reader.analysis("fusion")["target"] == "cpu"
            expected = run_all(reader.load(), target="cuda")
        assert s["fusion"]["target"] == "cuda"
        for k in KERNEL_COUNTS:
            assert s["fusion"][k] == expected["fusion"][k], k
        assert s["compile_suggestions"] == expected["compile_suggestions"]


def test_analyses_for_keeps_the_stored_shape_and_prices_by_gpu(recorded: Path) -> None:
    f = open_run(recorded).files()[-1]
    with StepReader(f.path) as reader:
        stored = reader.analyses()
        same = analyses_for(reader, None)
        a100 = analyses_for(reader, None, "a100")
        assert analyses_for(reader, None, "A100") == a100  # cached per file and target
    assert same.keys() == stored.keys()
    assert {k: same["fusion"][k] for k in KERNEL_COUNTS} == {k: stored["fusion"][k] for k in KERNEL_COUNTS}
    assert same["fusion"]["roofline"] == stored["fusion"]["roofline"]  # the step's measured figures
    assert a100["fusion"]["target"] == "cuda" and "A100" in a100["fusion"]["roofline"]["device"]
    assert a100["hazards"] == stored["hazards"]


def test_profile_target_stores_the_cuda_prediction(tmp_path: Path) -> None:
    run_dir = _train(tmp_path, "cuda", target="cuda", gpu="L4")  # through the step worker
    for f in open_run(run_dir).files():
        with StepReader(f.path) as reader:
            fusion = reader.analysis("fusion")
            assert reader.meta.extra["fusion_target"] == {"target": "cuda", "gpu": "L4"}
        assert fusion["target"] == "cuda" and "L4" in fusion["roofline"]["device"]


def test_old_step_file_without_torch_fails_clearly() -> None:
    r = _cli_without_torch("report", str(OLD_RUN), "--target", "cuda")
    assert r.returncode == 2
    assert "written before torch-gprof stored its op facts" in r.stderr
    assert "torch is not installed here" in r.stderr and "Traceback" not in r.stderr


def test_old_step_file_with_torch_retargets() -> None:
    r = subprocess.run([sys.executable, "-m", "gprof", "report", str(OLD_RUN), "--target", "cuda", "--json",
                        "--step", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "importing torch" in r.stderr
    assert json.loads(r.stdout)["steps"][0]["fusion"]["target"] == "cuda"


@pytest.mark.parametrize(("args", "said"), [
    (["--target", "tpu"], "invalid choice: 'tpu'"),
    (["--gpu", "X1"], "unknown GPU 'X1'; known GPUs: A100, H100"),
    (["--target", "cpu", "--gpu", "H100"], "applies to the cuda target only"),
])
def test_bad_target_or_gpu_is_a_clear_usage_error(recorded: Path, args: list[str], said: str) -> None:
    r = _cli_without_torch("report", str(recorded), *args)
    assert r.returncode == 2
    assert said in r.stderr and "Traceback" not in r.stderr


def test_bad_target_or_gpu_in_python(recorded: Path, tmp_path: Path) -> None:
    with StepReader(open_run(recorded).files()[-1].path) as reader:
        with pytest.raises(ValueError, match="cpu, cuda"):
            analyses_for(reader, "tpu")
        with pytest.raises(ValueError, match="known GPUs: A100"):
            analyses_for(reader, "cuda", "X1")
    with pytest.raises(ValueError, match="unknown fusion target"):
        gprof.profile(logdir=tmp_path, run="bad", target="gpu")
