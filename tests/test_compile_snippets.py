"""The compile snippets are code a user pastes: run them and check that Dynamo really compiles,
and that a step recorded with them shows the compiled region.

In-place ``module.compile()`` keeps state_dict keys. On torch 2.13 and older it leaves PyTorch's own
module classes eager (Dynamo skips torch's files when they are called in place). torch 2.14 compiles
them in place, but through their own ``_call_impl``, so Dynamo traces the global module hooks a
recording installs: the module recompiles with a graph break at each submodule. So those classes get
``torch.compile(module)`` on every torch; user-defined modules keep ``.compile()``. Which torch does
what is checked against the torch running the test."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

import gprof
from gprof.analyses.regions import _snippet
from gprof.capture.modules import _in_place_compiles_torch_classes, _is_compiled


class UserBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x)) * 2


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.user = UserBlock()
        self.seq = nn.Sequential(nn.Linear(8, 8), nn.GELU())
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.seq(self.user(x))
        for layer in self.layers:
            x = layer(x)
        return x


def _frames_compiled_by(snippet: str) -> int:
    torch._dynamo.reset()
    model = Net()
    before = counters["frames"]["ok"]
    exec(snippet, {"torch": torch, "model": model})
    model(torch.randn(2, 8))
    return counters["frames"]["ok"] - before


def test_snippet_forms() -> None:
    assert _snippet(["user"]) == "model.user.compile()"
    assert _snippet(["seq"], builtin=True) == "model.seq = torch.compile(model.seq)"
    assert _snippet(["layers.0", "layers.1"], builtin=True) == \
        "for i, block in enumerate(model.layers):\n    model.layers[i] = torch.compile(block)"
    assert _snippet([""], builtin=True) == "model = torch.compile(model)"


def test_each_snippet_compiles_its_module() -> None:
    assert _frames_compiled_by(_snippet(["user"])) >= 1
    assert _frames_compiled_by(_snippet(["seq"], builtin=True)) >= 1
    assert _frames_compiled_by(_snippet(["layers.0", "layers.1"], builtin=True)) >= 1


def test_in_place_compile_of_a_pytorch_class_is_told_right_for_this_torch() -> None:
    """Eager in place before torch 2.14, compiled from 2.14: the capture side's probe of the running
    torch and its compiled-region test must say what Dynamo really does here."""
    compiles = _frames_compiled_by("model.seq.compile()") >= 1
    assert _in_place_compiles_torch_classes() == compiles
    assert compiles == (tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 14)), torch.__version__
    model = Net()
    model.seq.compile()
    model.user.compile()
    assert _is_compiled(model.seq) == compiles and _is_compiled(model.user)
    assert _is_compiled(torch.compile(model.seq)) and not _is_compiled(model.layers[0])


def _record(snippet: str, tmp_path: Path) -> tuple[int, list[tuple[str, str]], set[str], list[str]]:
    """Compile with ``snippet``, run once, record one step: (frames Dynamo converted while
    recording, compiled regions as (phase, module), the ops recorded, torch-gprof's warnings)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Net()
    exec(snippet, {"torch": torch, "model": model})
    x = torch.randn(2, 8)
    model(x).sum().backward()
    before = counters["frames"]["total"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(logdir=tmp_path, run="snippet", analyze=False) as prof:
            model(x).sum().backward()
    g = prof.graphs[-1]
    regions = [(str(getattr(n.phase, "value", n.phase)), n.module) for n in g.nodes if n.op == "gprof.compiled_region"]
    return (counters["frames"]["total"] - before, regions, {n.op for n in g.nodes},
            [str(w.message) for w in caught if "torch-gprof" in str(w.message)])


def test_recorded_with_the_pytorch_class_snippet_the_module_is_one_region_each_way(tmp_path: Path) -> None:
    frames, regions, ops, warned = _record(_snippet(["seq"], builtin=True), tmp_path)
    assert frames == 0, "recording must not make Dynamo compile anything new"
    assert regions == [("forward", "seq"), ("backward", "seq")]
    assert "aten.gelu.default" not in ops and "aten.gelu_backward.default" not in ops
    assert not any("compiled in place" in w for w in warned)


def test_why_pytorch_classes_are_not_compiled_in_place(tmp_path: Path) -> None:
    """Before 2.14 the module stays eager (its GELU is recorded); from 2.14 it is compiled, but the
    recording's hooks are traced into it: it recompiles, and torch-gprof says so."""
    frames, regions, ops, warned = _record("model.seq.compile()", tmp_path)
    if not _in_place_compiles_torch_classes():
        assert "aten.gelu.default" in ops and regions == [] and warned == []
        return
    assert frames >= 1, "in place, the recording's module hooks make Dynamo recompile the module"
    assert ("forward", "seq") in regions and "aten.gelu.default" not in ops
    (w,) = [w for w in warned if "compiled in place" in w]
    assert w.startswith("torch-gprof: seq (Sequential) was compiled in place") and "torch.compile(module)" in w


@pytest.mark.parametrize("snippet", ["model.user.compile()", "model.user = torch.compile(model.user)"])
def test_user_classes_record_as_one_region_either_way(snippet: str, tmp_path: Path) -> None:
    frames, regions, _, warned = _record(snippet, tmp_path)
    assert frames == 0 and regions == [("forward", "user"), ("backward", "user")] and warned == []
