"""The compile snippets are code a user pastes: run them and check that Dynamo really compiles.

In-place ``module.compile()`` keeps state_dict keys. On torch 2.13 and older it leaves PyTorch's own
module classes eager (Dynamo skips torch's files when they are called in place), so those get
``torch.compile(module)``; torch 2.14 compiles them in place too, so every module keeps
``.compile()`` there. Which torch does what is checked against the torch running the test."""
from __future__ import annotations

import torch
from torch import nn
from torch._dynamo.utils import counters

from gprof.analyses.regions import _snippet, in_place_compiles_torch_classes, suggest
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
    """Why builtin modules need the other form before 2.14: in place, that torch leaves them eager.
    The recorded-version rule (regions) and the running-torch probe (capture) must both say what
    Dynamo really does here."""
    compiles = _frames_compiled_by("model.seq.compile()") >= 1
    assert in_place_compiles_torch_classes(torch.__version__) == compiles, torch.__version__
    assert _in_place_compiles_torch_classes() == compiles
    model = Net()
    model.seq.compile()
    model.user.compile()
    assert _is_compiled(model.seq) == compiles and _is_compiled(model.user)
    assert _is_compiled(torch.compile(model.seq)) and not _is_compiled(model.layers[0])


def test_version_rule() -> None:
    for v in ("2.13.0", "2.13.0+cpu", "1.99", "", "nightly"):
        assert not in_place_compiles_torch_classes(v), v
    for v in ("2.14.0", "2.14.1+cu130", "2.15.0.dev20270101", "3.0.0"):
        assert in_place_compiles_torch_classes(v), v


def test_suggestions_use_the_form_of_the_recording_torch() -> None:
    chain = {"id": 0, "phase": "forward", "modules": ["seq.0", "seq.1"], "est_time_saved_ns": 10}
    hazard = {"kind": "sync", "op": "aten.item", "module": "", "source": None}
    wrapped, in_place = "model.seq = torch.compile(model.seq)", "model.seq.compile()"
    for version, snippet in (("2.13.0+cpu", wrapped), ("", wrapped), ("2.14.1+cu130", in_place)):
        (s,) = suggest([chain], [hazard], {"seq": "Sequential"}, {"seq"}, version)
        assert s["snippet"] == snippet, version
    # what a step recorded on the running torch gets really compiles on it
    (s,) = suggest([chain], [hazard], {"seq": "Sequential"}, {"seq"}, torch.__version__)
    assert _frames_compiled_by(s["snippet"]) >= 1, s["snippet"]
