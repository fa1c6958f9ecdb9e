"""A model whose graph changes from step to step: variable sequence length, a data-dependent
number of refinement passes (``.item()`` drives a Python loop) and boolean-mask gathering.
These are exactly the patterns that break torch.compile graphs, so the hazard analysis has work."""
from __future__ import annotations

import torch
from torch import nn

try:
    from examples._harness import main, step
except ImportError:
    from _harness import main, step


class Refiner(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h + torch.tanh(self.lin(h)))


class DynamicNet(nn.Module):
    def __init__(self, d: int = 64) -> None:
        super().__init__()
        self.embed = nn.Linear(16, d)
        self.refine = Refiner(d)
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.embed(x))
        passes = int(h.mean().abs().mul(10).clamp(1, 3).item())  # data-dependent control flow
        for _ in range(passes):
            h = self.refine(h)
        keep = h.sum(-1) > 0  # boolean mask: dynamic output shape
        picked = h[keep] if bool(keep.any()) else h.reshape(-1, h.shape[-1])
        pred = self.head(picked).mean()
        return (pred - y.mean()) ** 2


def make(steps: int = 4):
    torch.manual_seed(0)
    model = DynamicNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    lengths = [12, 20, 7, 16, 9, 24][:steps]
    batches = [(torch.randn(4, n, 16, generator=g), torch.randn(4, generator=g)) for n in lengths]
    return model, opt, batches


if __name__ == "__main__":
    main("dynamic", make, step)
