"""``GprofProfiler``: record Lightning training steps with ``gprof``, as ``Trainer(profiler=...)``.

    trainer = L.Trainer(max_steps=100, profiler=GprofProfiler(logdir="runs", run="lit"))

One recorded step is one optimizer step: every training batch of gradient accumulation, up to and
including the batch that stepped the optimizer. Lightning's automatic optimization passes the
training step and backward as a closure to ``optimizer.step(closure)``; the recorded step spans the
whole ``run_training_batch`` action around it, so that forward and backward are in the step. The
step is numbered with ``trainer.global_step`` as it was when the step began, so ``schedule=`` counts
the Trainer's steps; a step ends at the first training batch after which ``global_step`` moved.

Validation, logging, checkpointing and the dataloader's ``next`` run outside ``run_training_batch``
between steps and are not recorded (data fetching between the micro-batches of one accumulated
step is). Nothing after the last step is recorded.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from lightning.pytorch.profilers import Profiler
from torch.profiler import ProfilerAction

from gprof.capture.profile import profile
from gprof.integrations._steps import FrameworkSteps

#: the action Lightning's training epoch loop wraps each training batch in (optimizer step included)
BATCH_ACTION = "run_training_batch"


class GprofProfiler(Profiler):
    """A Lightning ``Profiler`` that records each optimizer step as a gprof step.

    ``logdir``, ``run``, ``schedule`` and ``**options`` are ``gprof.profile``'s. If a training batch
    raises, the step it was in is saved marked incomplete and the recorder is removed, before
    Lightning's own error handling runs.
    """

    #: set by the Trainer (``Trainer.__setup_profiler``) before ``setup``; Lightning's own
    #: PyTorchProfiler reads the trainer through it too
    _lightning_module: Any

    def __init__(self, logdir: str | os.PathLike[str] = "runs", run: str | None = None, *,
                 schedule: Callable[[int], ProfilerAction] | None = None, **options: Any) -> None:
        super().__init__()
        self._steps = FrameworkSteps(logdir, run, schedule, options)
        self._step_began_at = 0
        self._outer_exception: BaseException | None = None

    @property
    def prof(self) -> profile:
        """The underlying ``gprof.profile`` (``prof.graphs``, ``prof.run_dir``)."""
        return self._steps.prof

    def _global_step(self) -> int:
        return int(self._lightning_module.trainer.global_step)

    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        super().setup(stage, local_rank, log_dir)
        self._steps.abandon("the previous Trainer run raised inside this step")

    def start(self, action_name: str) -> None:
        if action_name != BATCH_ACTION:
            return
        # an exception the caller is already handling is not one this batch raised (see stop)
        self._outer_exception = sys.exc_info()[1]
        if not self._steps.in_step:
            self._step_began_at = self._global_step()
            self._steps.begin(self._step_began_at)

    def stop(self, action_name: str) -> None:
        if action_name != BATCH_ACTION or not self._steps.in_step:
            return
        # Lightning stops actions in a ``finally``: an exception in flight is the batch's own
        exc = sys.exc_info()[1]
        if exc is not None and exc is not self._outer_exception:
            self._steps.close(type(exc), exc, exc.__traceback__)
        elif self._global_step() > self._step_began_at:
            self._steps.end()

    def summary(self) -> str:
        # the report is the run itself; Lightning logs this line at the end of fit
        return f"gprof: training steps recorded under {self.prof.run_dir} (torch-gprof report {self.prof.run_dir})"

    def teardown(self, stage: str | None) -> None:
        # Profiler.__del__ calls this on an instance whose __init__ raised, too (bad options)
        steps = getattr(self, "_steps", None)
        if steps is not None:
            steps.close()
        super().teardown(stage)
