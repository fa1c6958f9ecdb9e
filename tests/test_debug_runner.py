"""The child side of ``torch-gprof debug`` (run in-process here), and ``attach``'s errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gprof.cli import main
from gprof.debug import runner
from gprof.store import open_run

ROOT = Path(__file__).resolve().parents[1]

PLAIN_SCRIPT = """
import sys
import torch
x = torch.ones(3, requires_grad=True)
(x * float(sys.argv[1])).sum().backward()
print("grad", x.grad.tolist())
"""


def test_wrap_records_a_script_that_does_not_use_gprof(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_SCRIPT)
    address_file = tmp_path / "addr.json"
    assert runner.main(["--address-file", str(address_file), "--wrap", "--logdir", str(tmp_path / "runs"),
                        str(script), "2.5"]) == 0
    assert "grad [2.5, 2.5, 2.5]" in capsys.readouterr().out
    info = json.loads(address_file.read_text())
    assert info["address"].startswith("127.0.0.1:") and len(info["token"]) == 32
    run = open_run(tmp_path / "runs" / "plain")
    with run.open() as r:
        assert {op for (op,) in r.sql("SELECT op FROM nodes")} >= {"aten.mul.Tensor", "aten.sum.default"}
    # the debug address file is gone once the session closed
    assert not list((tmp_path / "runs" / "plain" / "plugins" / "gprof").glob("debug.rank*.json"))


def test_script_exit_code_comes_back(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys\nsys.exit(3)\n")
    assert runner.main(["--address-file", str(tmp_path / "a.json"), "--logdir", str(tmp_path), str(script)]) == 3


OPTIMIZER_SCRIPT = """
import torch
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    opt.zero_grad()
print("trained")
"""


def test_a_plain_script_is_recorded_step_by_step_without_flags(tmp_path: Path) -> None:
    """No gprof import, no --wrap: the whole run is recorded, each optimizer.step() ending a step."""
    script = tmp_path / "plain_train.py"
    script.write_text(OPTIMIZER_SCRIPT)
    assert not runner.uses_gprof(str(script)) and runner.uses_gprof(str(ROOT / "examples" / "nan_example.py"))
    assert runner.main(["--address-file", str(tmp_path / "a.json"), "--logdir", str(tmp_path / "runs"),
                        str(script)]) == 0
    assert [f.step for f in open_run(tmp_path / "runs" / "plain_train").files()] == [0, 1, 2]


@pytest.mark.parametrize("args, says", [
    (["attach", "nowhere:"], "cannot connect to nowhere:"),
    (["attach", "127.0.0.1:9"], "GPROF_DEBUG_TOKEN"),
    (["attach", "{tmp}"], "no debug server for rank 0"),
    (["attach", "{tmp}/bad.json"], "not a torch-gprof debug address file"),
])
def test_attach_errors_say_what_to_do(args: list[str], says: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPROF_DEBUG_TOKEN", raising=False)
    (tmp_path / "bad.json").write_text("{}")
    argv = [a.format(tmp=tmp_path) for a in args]
    if argv[1] == "nowhere:":
        monkeypatch.setenv("GPROF_DEBUG_TOKEN", "x")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_gprof_debug_is_callable_whichever_import_came_first(tmp_path: Path) -> None:
    import sys

    import gprof
    import gprof.debug.client

    with gprof.profile(logdir=tmp_path, run="callable") as prof:
        session = sys.modules["gprof.debug"](prof, ["inf"], quiet=True)
        assert session.debugger.breakpoints[0].spec == "inf"
        session.close()
