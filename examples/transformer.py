"""A small transformer: one encoder layer (d_model 256, 8 heads, FFN 1024) plus a linear head and
MSE loss; input 8x128x256. The built-in example the README runs."""
from __future__ import annotations

import torch
from torch import nn

try:
    from examples._harness import main, step
except ImportError:
    from _harness import main, step


class TinyTransformer(nn.Module):
    def __init__(self, d_model: int = 256, layers: int = 1) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=8, dim_feedforward=4 * d_model, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, d_model)
        self.loss_fn = nn.MSELoss()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.head(self.encoder(x)), y)


def make(steps: int = 4, batch: int = 8, seq: int = 128, d_model: int = 256, layers: int = 1):
    torch.manual_seed(0)
    model = TinyTransformer(d_model, layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(batch, seq, d_model, generator=g), torch.randn(batch, seq, d_model, generator=g))
               for _ in range(steps)]
    return model, opt, batches


if __name__ == "__main__":
    main("transformer", make, step)
