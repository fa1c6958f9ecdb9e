"""Framework-delimited steps on top of ``gprof.profile``.

A framework knows exactly where its training step begins and ends (HF's ``on_step_begin`` /
``on_step_end``, Lightning's training batch that ran the optimizer step). Between two steps it runs
logging, evaluation, checkpointing and data fetching: those ops belong to no training step, and the
ones after the last step must not be saved as a step the readers open by default (issue 13, point 1).

``gprof.profile`` records from one ``prof.step()`` to the next, without gaps. ``FrameworkSteps``
makes the gaps out of its public surface: the profile's schedule is wrapped so that it answers
``NONE`` (record nothing) whenever the framework is between steps, and ``prof.step_num`` is set to
the framework's own step number before each step begins, so files are named and schedules are
evaluated by the number the user sees in their logs. Nothing is recording when the block exits, so
no trailing step is ever written.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any

from torch.profiler import ProfilerAction

from gprof.capture.profile import profile


class FrameworkSteps:
    """One ``gprof.profile`` whose steps are opened and closed by framework callbacks."""

    def __init__(self, logdir: str | os.PathLike[str], run: str | None,
                 schedule: Callable[[int], ProfilerAction] | None, options: dict[str, Any]) -> None:
        self._user_schedule = schedule
        self._between_steps = True
        #: the underlying profile (``prof.graphs``, ``prof.run_dir``); built here so that bad options
        #: fail when the callback is made, entered at the first step so set-up is not recorded
        self.prof = profile(logdir, run, schedule=self._schedule, **options)
        self._entered = False
        self.in_step = False

    def _schedule(self, step: int) -> ProfilerAction:
        if self._between_steps:
            return ProfilerAction.NONE
        return ProfilerAction.RECORD if self._user_schedule is None else self._user_schedule(step)

    def begin(self, step: int) -> None:
        """Start recording the framework's step ``step`` (if the schedule records it)."""
        if not self._entered:
            self.prof.__enter__()  # between steps: installs the hooks, records nothing yet
            self._entered = True
        self._between_steps = False
        self.prof.step_num = step - 1
        self.prof.step()  # ends the (empty) gap, begins `step`
        self.in_step = True

    def end(self) -> None:
        """Save the step being recorded and record nothing until the next ``begin``."""
        if not self.in_step:
            return
        self._between_steps = True
        self.in_step = False
        self.prof.step()  # saves the step, then begins a gap that records nothing

    def close(self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None,
              tb: TracebackType | None = None) -> None:
        """Leave the profile. With an exception, the step it interrupted is saved marked incomplete;
        otherwise nothing is recording here (see the module docstring)."""
        entered, self._entered = self._entered, False
        self.in_step = False
        self._between_steps = True
        if entered:
            self.prof.__exit__(exc_type, exc, tb)

    def abandon(self, reason: str) -> None:
        """Close a profile that a failed run left open: its step, if one was recording, is saved
        marked incomplete with ``reason`` (it also holds whatever ran after the failure)."""
        if self.in_step:
            error = RuntimeError(reason)
            self.close(RuntimeError, error, None)
        else:
            self.close()
