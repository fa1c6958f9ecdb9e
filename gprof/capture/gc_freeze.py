"""Keep Python's cyclic garbage collector off the pre-step heap while a step is recorded.

The recorder makes a few GC-tracked containers per op (shapes, tensor tuples, the record), so
collections run during the step, and each full one rescans every object of the process: the
model, torch's modules, the user's data. Freezing the heap at the start of a recorded step
(``gc.freeze``) limits those scans to what the step itself creates; the heap is unfrozen when the
step ends, so garbage from before the step is collected at the next collection after it. Results
are unaffected: the collector frees memory, it never changes a tensor.
"""
from __future__ import annotations

import gc


class FrozenHeap:
    """``enter()`` at the start of a recorded step, ``exit()`` at its end (idempotent)."""

    __slots__ = ("_frozen",)

    def __init__(self) -> None:
        self._frozen = False

    def enter(self) -> None:
        # A process that froze its own heap (a pre-fork server) keeps its freeze untouched.
        if not self._frozen and gc.isenabled() and gc.get_freeze_count() == 0:
            gc.freeze()
            self._frozen = True

    def exit(self) -> None:
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
