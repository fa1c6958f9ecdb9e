"""The Memory tab: live bytes over the step, and what was live at the peak."""
from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from gprof.graph.formatting import fmt_bytes
from gprof.store import StoreError
from gprof_tui.render import unreadable_text
from gprof_tui.stepdata import StepData


class MemoryView(Vertical):
    """The curve needs a scan of the whole step, so it is drawn on a worker thread once the tab
    is first viewed (the widget is mounted then); the text comes from the stored summary."""

    DEFAULT_CSS = """
    MemoryView { height: auto; }
    MemoryView #memplot { height: 10; margin: 1 2; }
    """

    def __init__(self, data: StepData) -> None:
        super().__init__()
        self._step = data

    def compose(self) -> ComposeResult:
        yield Sparkline([], id="memplot")
        yield Static(self._text(), id="memtext")

    def on_mount(self) -> None:
        self._plot(self._step)

    def _text(self) -> str:
        m = self._step.memory
        cats = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in sorted(m.by_category.items(), key=lambda kv: -kv[1]))
        saved = ", ".join(f"{k or '(root)'} {fmt_bytes(v)}" for k, v in
                          sorted(m.saved_activations.items(), key=lambda kv: -kv[1])[:8])
        return escape(
            f"live bytes over the step (max per bucket of nodes)\npeak {fmt_bytes(m.peak_bytes)} at node {m.peak_node}"
            f"\nat the peak: {cats or '-'}\nsaved for backward: {saved or '-'}")

    @work(thread=True, exclusive=True, group="memory")
    def _plot(self, data: StepData) -> None:
        try:
            series = data.memory_series()
        except StoreError as e:  # on this thread it would end the app: the tab says it instead
            self.app.call_from_thread(self._unreadable, e)
            return
        self.app.call_from_thread(self._show, series)

    def _unreadable(self, error: StoreError) -> None:
        if self.is_attached:
            self.query_one("#memtext", Static).update(
                unreadable_text("The memory curve", error) + "\n\n" + self._text())

    def _show(self, series: list[int]) -> None:
        if self.is_attached:  # not switched to another step meanwhile
            self.query_one("#memplot", Sparkline).data = series
