"""A step that goes NaN mid-step, for the debugger: ``torch-gprof debug examples/nan_example.py``.

A parameter (``gain``) holds an Inf. Multiplying by it puts Infs into the activations, and the
LayerNorm after it computes Inf - Inf = NaN: that LayerNorm is the first op whose output has a NaN
its inputs did not have, and the Inf came from the parameter. Before that, a causal attention uses
a ``-inf`` mask on purpose; a default anomaly run (``--break nan``) must not stop there.

The script prints a digest of the losses and final parameters, so a debugged run can be checked
bit for bit against an undebugged one.
"""
from __future__ import annotations

import argparse
import hashlib

import torch
from torch import nn

try:
    from examples._harness import step, train
except ImportError:  # run as `python examples/nan_example.py`
    from _harness import step, train


class MaskedAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        t = x.shape[1]
        mask = torch.full((t, t), float("-inf")).triu(1)  # causal: -inf above the diagonal
        scores = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5 + mask
        return scores.softmax(-1) @ v


class NanNet(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.attn = MaskedAttention(d)
        self.proj = nn.Linear(d, d)
        self.gain = nn.Parameter(torch.ones(d))
        with torch.no_grad():
            self.gain[3] = float("inf")  # the bad parameter
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)
        self.loss_fn = nn.MSELoss()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.attn(x)
        h = self.proj(h) * self.gain  # Inf enters here
        h = self.norm(h)  # Inf - mean(Inf) = NaN: the first NaN-producing op
        return self.loss_fn(self.head(h), y)


def make(steps: int = 2):
    torch.manual_seed(0)
    model = NanNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 6, 16, generator=g), torch.randn(4, 6, 1, generator=g)) for _ in range(steps)]
    return model, opt, batches


def digest(losses: list[float], model: nn.Module) -> str:
    """Bit-exact fingerprint of a run: loss values and every parameter's bytes."""
    h = hashlib.sha256(repr(losses).encode())
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    import gprof

    p = argparse.ArgumentParser(description="Train two steps of a model that goes NaN mid-step.")
    p.add_argument("--logdir", default="runs", help="where runs are written (default: runs)")
    p.add_argument("--run", default="nan_example", help="run name (default: nan_example)")
    p.add_argument("--no-profile", action="store_true", help="run without torch-gprof (the reference result)")
    args = p.parse_args(argv)
    made = make()  # built before profiling, so the Inf is already in the parameter when steps start

    if args.no_profile:
        losses = train(lambda: made, step)
    else:
        with gprof.profile(logdir=args.logdir, run=args.run) as prof:
            losses = train(lambda: made, step, profile=prof)
    print(f"nan_example result: losses {losses} digest {digest(losses, made[0])}", flush=True)


if __name__ == "__main__":
    main()
