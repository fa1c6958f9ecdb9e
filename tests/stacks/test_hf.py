"""GprofCallback on the real Hugging Face Trainer: a tiny random Llama, 3 optimizer steps of 2 micro-batches."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[stacks]')")
from stackutil import assert_bit_identical, assert_framework_steps, phases, stored_steps  # noqa: E402

from gprof.integrations.hf import GprofCallback  # noqa: E402

STEPS = 3


class _Tokens(torch.utils.data.Dataset):
    """12 fixed random sequences of 16 token ids; labels are the inputs (causal LM)."""

    def __init__(self) -> None:
        self.ids = torch.randint(0, 128, (12, 16), generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class _LossKeepingTrainer(transformers.Trainer):
    """Keeps every micro-batch's exact loss tensor (the logged ones are rounded)."""

    losses: list[torch.Tensor]

    def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = super().training_step(*args, **kwargs)
        self.losses.append(loss.detach().clone())
        return loss


def _train(out: Path, callback: GprofCallback | None, accumulation: int = 2,
           evaluate: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    model = transformers.LlamaForCausalLM(config)
    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=2, gradient_accumulation_steps=accumulation,
        use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0,
        dataloader_num_workers=0, eval_strategy="steps" if evaluate else "no", eval_steps=1,
        per_device_eval_batch_size=4)
    trainer = _LossKeepingTrainer(model=model, args=args, train_dataset=_Tokens(),
                                  eval_dataset=_Tokens() if evaluate else None,
                                  callbacks=[callback] if callback is not None else [])
    trainer.losses = []
    trainer.train()
    assert trainer.state.global_step == STEPS
    return trainer.losses, [p.detach().clone() for p in model.parameters()]


def test_one_gprof_step_per_optimizer_step_and_bit_identical(tmp_path: Path) -> None:
    callback = GprofCallback(logdir=tmp_path, run="llama")
    profiled = _train(tmp_path / "out1", callback)
    plain = _train(tmp_path / "out2", None)
    assert_bit_identical(profiled[0], plain[0])  # 6 micro-batch losses
    assert_bit_identical(profiled[1], plain[1])

    steps = assert_framework_steps(callback.prof.run_dir, STEPS)  # numbered by state.global_step
    assert phases(steps[1]) == phases(steps[2])  # steady state: the same work each step


def test_step_holds_every_micro_batch_and_no_evaluation(tmp_path: Path) -> None:
    """Forward and backward of 2 accumulated micro-batches are twice one batch's; evaluation after
    every step (between on_step_end and the next on_step_begin) is not recorded."""
    accumulated = GprofCallback(logdir=tmp_path, run="ga2")
    _train(tmp_path / "out1", accumulated, accumulation=2)
    single = GprofCallback(logdir=tmp_path, run="ga1-eval")
    _train(tmp_path / "out2", single, accumulation=1, evaluate=True)
    two, one = stored_steps(accumulated.prof.run_dir)[2], stored_steps(single.prof.run_dir)[2]
    assert phases(two)["forward"] == 2 * phases(one)["forward"] > 0
    assert phases(two)["backward"] == 2 * phases(one)["backward"] > 0
    assert sorted(stored_steps(single.prof.run_dir)) == [0, 1, 2]


def test_exception_saves_the_interrupted_step_incomplete(tmp_path: Path) -> None:
    class Boom(transformers.TrainerCallback):
        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 1:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), GprofCallback(logdir=tmp_path, run="boom") as callback:
        torch.manual_seed(0)
        config = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=4, num_key_value_heads=2)
        args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=STEPS, use_cpu=True,
                                              per_device_train_batch_size=2, report_to=[], save_strategy="no",
                                              disable_tqdm=True)
        transformers.Trainer(model=transformers.LlamaForCausalLM(config), args=args, train_dataset=_Tokens(),
                             callbacks=[callback, Boom()]).train()
    steps = stored_steps(callback.prof.run_dir)
    assert sorted(steps) == [0, 1]
    assert steps[0].meta.complete and not steps[1].meta.complete
    assert "boom" in (steps[1].meta.error or "")
    assert _get_current_dispatch_mode() is None  # the recorder is gone
