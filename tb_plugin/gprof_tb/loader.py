"""The ``tensorboard_plugins`` entry point.

It imports only ``tensorboard``: an ImportError in an entry-point module stops TensorBoard from
starting at all, while an exception inside ``load()`` is logged and the other tabs keep working.
So torch and gprof are imported inside ``load()``.
"""
from __future__ import annotations

from tensorboard.plugins import base_plugin


class GprofLoader(base_plugin.TBLoader):
    """Builds the plugin on demand; TensorBoard calls ``load`` once at start-up."""

    def load(self, context: base_plugin.TBContext) -> base_plugin.TBPlugin | None:
        from gprof_tb.plugin import GprofPlugin

        return GprofPlugin(context)
