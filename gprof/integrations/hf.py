"""``GprofCallback``: record Hugging Face ``Trainer`` training steps with ``gprof``.

    trainer = Trainer(model, args, train_dataset=ds, callbacks=[GprofCallback(logdir="runs", run="llama")])

One recorded step is one optimizer step: every micro-batch of gradient accumulation (forward and
backward), gradient clipping, ``optimizer.step()``, the LR scheduler and ``zero_grad``. The step is
numbered with ``state.global_step`` as it was when the step began (0 for the first optimizer step,
the resumed step after ``resume_from_checkpoint``), so ``schedule=`` counts the Trainer's steps.

Boundaries are the Trainer's own ``on_step_begin`` (which transformers fires once per optimizer step,
before the first micro-batch) and ``on_step_end`` (after ``zero_grad``). Logging, evaluation and
checkpointing run between the two and are not recorded, nor is anything after the last step.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any

from torch.profiler import ProfilerAction
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from gprof.capture.profile import profile
from gprof.integrations._steps import FrameworkSteps


class GprofCallback(TrainerCallback):
    """A ``transformers.TrainerCallback`` that records each optimizer step as a gprof step.

    ``logdir``, ``run``, ``schedule`` and ``**options`` are ``gprof.profile``'s. The Trainer tells a
    callback nothing when ``train()`` raises, so a run that may fail is best wrapped in the callback
    as a context manager (``with GprofCallback(...) as cb: Trainer(..., callbacks=[cb]).train()``):
    the interrupted step is then saved marked incomplete and the recorder is removed. Without it, the
    next ``on_train_begin`` closes a profile a failed ``train()`` left open.
    """

    def __init__(self, logdir: str | os.PathLike[str] = "runs", run: str | None = None, *,
                 schedule: Callable[[int], ProfilerAction] | None = None, **options: Any) -> None:
        self._steps = FrameworkSteps(logdir, run, schedule, options)

    @property
    def prof(self) -> profile:
        """The underlying ``gprof.profile`` (``prof.graphs``, ``prof.run_dir``)."""
        return self._steps.prof

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._steps.abandon("the previous Trainer.train() raised inside this step")

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                      **kwargs: Any) -> None:
        self._steps.begin(state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        self._steps.end()

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        self._steps.close()

    def __enter__(self) -> GprofCallback:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._steps.close(exc_type, exc, tb)
