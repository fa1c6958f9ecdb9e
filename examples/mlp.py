"""A 3-hidden-layer MLP classifier (256-512x3-10), batch 64."""
from __future__ import annotations

import torch
from torch import nn

try:
    from examples._harness import main, step
except ImportError:  # run as `python examples/mlp.py`
    from _harness import main, step


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10),
        )
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.net(x), y)


def make(steps: int = 4):
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(64, 256, generator=g), torch.randint(0, 10, (64,), generator=g)) for _ in range(steps)]
    return model, opt, batches


if __name__ == "__main__":
    main("mlp", make, step)
