"""GprofProfiler on the real Lightning Trainer: a tiny LightningModule, 3 optimizer steps of 2 micro-batches.

With automatic optimization Lightning runs the last micro-batch's training step and backward inside
``optimizer.step(closure)``; the earlier ones run the closure directly. Both must be in the step, as
forward and backward.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from stackutil import assert_bit_identical, assert_framework_steps, phases, stored_steps
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

L = pytest.importorskip("lightning.pytorch", reason="lightning is not installed (pip install -e '.[stacks]')")
from gprof.integrations.lightning import GprofProfiler  # noqa: E402

STEPS = 3


class _Regressor(L.LightningModule):
    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        self.losses: list[torch.Tensor] = []
        self.fail_at = fail_at

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if batch_idx == self.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.losses.append(loss.detach().clone())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def _fit(profiler: GprofProfiler | None, accumulation: int = 2,
         fail_at: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    torch.manual_seed(0)
    module = _Regressor(fail_at)
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(24, 8, generator=g), torch.randn(24, 1, generator=g))
    trainer = L.Trainer(max_steps=STEPS, accumulate_grad_batches=accumulation, accelerator="cpu", devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, profiler=profiler)
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    assert trainer.global_step == STEPS
    return module.losses, [p.detach().clone() for p in module.parameters()]


def test_one_gprof_step_per_optimizer_step_and_bit_identical(tmp_path: Path) -> None:
    profiler = GprofProfiler(logdir=tmp_path, run="lit")
    profiled = _fit(profiler)
    plain = _fit(None)
    assert_bit_identical(profiled[0], plain[0])  # 6 micro-batch losses
    assert_bit_identical(profiled[1], plain[1])

    assert_framework_steps(profiler.prof.run_dir, STEPS)  # numbered by trainer.global_step


def test_closure_inside_optimizer_step_is_forward_and_backward(tmp_path: Path) -> None:
    """Without accumulation every closure runs inside ``optimizer.step``; with 2 micro-batches one
    does and one does not. Same forward/backward either way: twice as much with 2 micro-batches."""
    accumulated = GprofProfiler(logdir=tmp_path, run="ga2")
    _fit(accumulated, accumulation=2)
    single = GprofProfiler(logdir=tmp_path, run="ga1")
    _fit(single, accumulation=1)
    two, one = stored_steps(accumulated.prof.run_dir)[2], stored_steps(single.prof.run_dir)[2]
    assert phases(two)["forward"] == 2 * phases(one)["forward"] > 0
    assert phases(two)["backward"] == 2 * phases(one)["backward"] > 0
    assert phases(two)["optimizer"] == phases(one)["optimizer"] > 0


def test_exception_saves_the_interrupted_step_incomplete(tmp_path: Path) -> None:
    profiler = GprofProfiler(logdir=tmp_path, run="boom")
    with pytest.raises(RuntimeError, match="boom"):
        _fit(profiler, fail_at=3)  # the second micro-batch of step 1
    steps = stored_steps(profiler.prof.run_dir)
    assert sorted(steps) == [0, 1]
    assert steps[0].meta.complete and not steps[1].meta.complete
    assert "boom" in (steps[1].meta.error or "")
    assert _get_current_dispatch_mode() is None  # the recorder is gone
