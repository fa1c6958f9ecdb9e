"""``gprof.profile`` around an accelerate loop: accelerator.accumulate / backward, 3 optimizer steps
of 2 micro-batches. One ``prof.step()`` per real optimizer step (``accelerator.sync_gradients``), as
docs/integrations.md shows."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from stackutil import assert_bit_identical, phases, stored_steps
from torch import nn

import gprof

accelerate = pytest.importorskip("accelerate", reason="accelerate is not installed (pip install -e '.[stacks]')")

STEPS = 3


@pytest.fixture
def fresh_accelerator_state() -> Iterator[None]:
    """Accelerate keeps process-wide singletons; each training here starts from none."""
    from accelerate.state import AcceleratorState, GradientState

    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _train(prof: gprof.profile | None) -> tuple[list[torch.Tensor], nn.Module]:
    torch.manual_seed(0)
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(4 * 2 * STEPS, 8, generator=g),
                                          torch.randn(4 * 2 * STEPS, 1, generator=g))
    model, opt, loader = accelerator.prepare(model, opt, torch.utils.data.DataLoader(data, batch_size=4))
    losses = []
    for x, y in loader:
        with accelerator.accumulate(model):
            loss = nn.functional.mse_loss(model(x), y)
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad()
        losses.append(loss.detach().clone())
        if prof is not None and accelerator.sync_gradients:
            prof.step()
    return losses, model


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_accelerate_loop_one_step_per_optimizer_step(tmp_path: Path, fresh_accelerator_state: None) -> None:
    with gprof.profile(tmp_path, "accel") as prof:
        losses, model = _train(prof)
    plain_losses, plain_model = _train(None)
    assert_bit_identical(losses, plain_losses)
    assert_bit_identical(_params(model), _params(plain_model))
    steps = stored_steps(prof.run_dir)
    assert sorted(steps) == [0, 1, 2]  # the loop ends right after the last prof.step(): no tail
    for num, graph in steps.items():
        counts = phases(graph)
        assert graph.meta.complete
        assert counts["forward"] > 0 and counts["backward"] > 0 and counts["optimizer"] > 0, (num, counts)
        # both micro-batches are in each step: 2 Linear layers x 2 micro-batches
        assert sum(n.op == "aten.addmm.default" and n.phase == "forward" for n in graph.nodes) == 4
