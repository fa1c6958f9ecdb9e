"""The compile snippets are code a user pastes: run them and check that Dynamo really compiles.

In-place ``module.compile()`` keeps state_dict keys but leaves PyTorch's own module classes eager on
this torch (Dynamo skips torch's files when they are called in place), so those get
``torch.compile(module)``; user-defined modules keep ``.compile()``."""
from __future__ import annotations

import torch
from torch import nn
from torch._dynamo.utils import counters

from gprof.analyses.regions import _snippet


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
    # why builtin modules need the other form: in place, this torch leaves them eager
    assert _frames_compiled_by("model.seq.compile()") == 0
