"""The live debugger: shows a pause of a (possibly remote, possibly other-thread) training step
and drives it over the debug protocol. It never touches the debugged process otherwise."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from rich.markup import escape
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, ListItem, ListView, RichLog, Static

from gprof.debug.client import DebugClient, DebugCommandError, DebugConnectionError
from gprof.store import StoreError, open_run
from gprof_tui.help import HelpScreen
from gprof_tui.render import TENSOR_COLUMNS, pause_text, stack_text, tensor_rows

W = TypeVar("W")

#: prompt kind -> (placeholder, handler method name)
_PROMPTS = {
    "break": "breakpoint, e.g. nan | inf | @encoder:backward | addmm if absmax > 1e4 (Enter adds, Esc cancels)",
    "eval": "expression over out, outs, ins, in0, out0, torch, e.g. out.abs().max() (Enter runs)",
    "save": "NAME PATH, e.g. out0 /tmp/out0.pt (Enter saves)",
}


class DebugApp(App):
    """``connect(on_event) -> DebugClient`` is called on a worker thread (it may wait for a child
    process to start its server). With a child process, ``output(sink) -> lines so far`` feeds the
    log pane and ``wait_exit() -> exit code`` blocks until the program ends."""

    TITLE = "torch-gprof debug"
    BINDINGS = [
        Binding("c", "resume('continue')", "continue"),
        Binding("s", "resume('step')", "step"),
        Binding("n", "resume('next')", "next"),
        Binding("r", "resume('finish')", "end of step"),
        Binding("b", "prompt('break')", "break"),
        Binding("d", "toggle(False)", "disable"),
        Binding("e", "toggle(True)", "enable", show=False),
        Binding("x", "prompt('eval')", "eval"),
        Binding("w", "prompt('save')", "save"),
        Binding("t", "browse", "steps"),
        Binding("question_mark", "help", "help"),
        Binding("escape", "cancel_prompt", "cancel", show=False),
        Binding("q", "quit_debugger", "quit"),
    ]
    DEFAULT_CSS = """
    #left { width: 62%; }
    #pause-box { height: 1fr; }
    #tensors { height: auto; max-height: 14; }
    #evalout { height: auto; max-height: 6; color: $accent; }
    #stack-box { height: 1fr; border-left: solid $primary; }
    #breaks { height: 10; border-left: solid $primary; border-top: solid $primary; }
    #log { height: 10; border-top: solid $primary; }
    #prompt { display: none; }
    #prompt.shown { display: block; }
    """

    def __init__(self, connect: Callable[[Callable[[dict[str, Any]], None]], DebugClient], title: str = "",
                 output: Callable[[Callable[[str], None]], list[str]] | None = None,
                 wait_exit: Callable[[], int] | None = None) -> None:
        super().__init__()
        self._connect = connect
        self._output = output
        self._wait_exit = wait_exit
        self.client: DebugClient | None = None
        self.pause: dict[str, Any] | None = None
        self.breakpoints: list[dict[str, Any]] = []
        self.run_dir: str | None = None
        self.finished: str | None = None
        self._prompt_kind: str | None = None
        self.sub_title = title or "connecting..."

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="left"):
                with VerticalScroll(id="pause-box"):
                    yield Static("waiting for the program to pause (breakpoints below)...", id="pause")
                yield DataTable(id="tensors", cursor_type="row", zebra_stripes=True)
                yield Static("", id="evalout")
            with Vertical():
                with VerticalScroll(id="stack-box"):
                    yield Static("", id="stack")
                yield ListView(id="breaks")
        yield RichLog(id="log", wrap=False, max_lines=5000, markup=False)
        yield Input(id="prompt")
        yield Footer()

    def _main(self, selector: str, kind: type[W]) -> W:
        """A widget of the debugger screen, even while help or the step browser is on top."""
        return self.screen_stack[0].query_one(selector, kind)

    def on_mount(self) -> None:
        self._main("#tensors", DataTable).add_columns(*TENSOR_COLUMNS)
        self._main("#log", RichLog).border_title = "program output"
        threading.Thread(target=self._connect_thread, name="gprof-tui-connect", daemon=True).start()
        if self._output is not None:
            for line in self._output(self._line_from_thread):
                self.log_line(line)
        if self._wait_exit is not None:
            threading.Thread(target=self._exit_thread, name="gprof-tui-wait", daemon=True).start()

    def _exit_thread(self) -> None:
        assert self._wait_exit is not None
        code = self._wait_exit()
        self._from_thread(self._set_finished, f"program finished (exit code {code})")

    def _line_from_thread(self, line: str) -> None:
        self._from_thread(self.log_line, line)

    def _from_thread(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.call_from_thread(fn, *args)
        except RuntimeError:  # the app already exited
            pass

    # ------------------------------------------------------------------ connection
    def _connect_thread(self) -> None:
        try:
            client = self._connect(self._event_from_thread)
        except DebugConnectionError as e:
            self._from_thread(self._set_finished, f"cannot attach: {e}")
            return
        self._from_thread(self._connected, client)

    def _connected(self, client: DebugClient) -> None:
        self.client = client
        self.handle_event({"event": "hello", **client.hello})
        self._refresh_state()

    def _event_from_thread(self, event: dict[str, Any]) -> None:
        self._from_thread(self.handle_event, event)

    def log_line(self, line: str) -> None:
        self._main("#log", RichLog).write(line)

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "hello":
            self.breakpoints = event.get("breakpoints", [])
            self.run_dir = event.get("run_dir") or self.run_dir
            self._show_breakpoints()
            self.sub_title = f"attached to pid {event.get('pid')}: running"
            if event.get("paused"):
                self._show_pause(event["paused"])
        elif kind == "paused":
            self._show_pause(event["pause"])
            self._refresh_state()
        elif kind == "running":
            self.sub_title = f"running ({event.get('mode')})"
            self._main("#pause", Static).update("running...")
        elif kind == "step_saved":
            self.run_dir = event.get("run_dir") or self.run_dir
            self.notify(f"step {event['step']} recorded")
        elif kind == "disconnected" and self.finished is None and self._wait_exit is None:
            self._set_finished("the program went away (finished or killed)")

    def _set_finished(self, text: str) -> None:
        self.finished = text
        self.pause = None
        self.sub_title = text + "  (q quits)"
        self._main("#pause", Static).update(escape(text))
        self._main("#stack", Static).update("")
        self._main("#tensors", DataTable).clear()

    def _show_pause(self, p: dict[str, Any]) -> None:
        self.pause = p
        where = f"{p['op']} in {p['module'] if p['module'] is not None else '-'} ({p['phase']})" if p.get("op") else p["reason"]
        self.sub_title = f"PAUSED at {where}"
        self._main("#pause", Static).update(pause_text(p))
        self._main("#stack", Static).update("[b]user stack[/b] (innermost first)\n" + stack_text(p))
        table = self._main("#tensors", DataTable)
        table.clear()
        table.add_rows(tensor_rows(p["inputs"] + p["outputs"]))
        self._main("#evalout", Static).update("")

    def _show_breakpoints(self) -> None:
        lv = self._main("#breaks", ListView)
        lv.clear()
        lv.border_title = "breakpoints (b add, d/e disable/enable)"
        for b in self.breakpoints:
            mark = "x" if b["enabled"] else " "
            lv.append(ListItem(Static(escape(f"[{mark}] {b['id']}: {b['spec']}  hits {b['hits']}"))))

    # ------------------------------------------------------------------ commands
    def send(self, cmd: str, done: Callable[[Any], None] | None = None, **kwargs: Any) -> None:
        """Send a command on a worker thread; errors become notifications, never tracebacks."""
        client = self.client
        if client is None:
            self.notify("not attached yet", severity="warning")
            return

        def work() -> None:
            try:
                result = client.request(cmd, **kwargs)
            except (DebugCommandError, DebugConnectionError, TimeoutError) as e:
                self.call_from_thread(self.notify, str(e) or type(e).__name__, severity="error", timeout=8)
                return
            if done is not None:
                self.call_from_thread(done, result)

        threading.Thread(target=work, daemon=True).start()

    def _refresh_state(self) -> None:
        def got(state: dict[str, Any]) -> None:
            self.breakpoints = state["breakpoints"]
            self._show_breakpoints()
            if state.get("paused") and self.pause is None:  # a pause announced before we listened
                self._show_pause(state["paused"])

        self.send("state", got)

    def action_resume(self, mode: str) -> None:
        if self.pause is None:
            self.notify("not paused" if self.finished is None else self.finished, severity="warning")
            return
        self.pause = None
        self.send(mode)

    def action_prompt(self, kind: str) -> None:
        box = self._main("#prompt", Input)
        self._prompt_kind = kind
        box.placeholder = _PROMPTS[kind]
        box.value = ""
        box.add_class("shown")
        box.focus()

    def action_cancel_prompt(self) -> None:
        box = self._main("#prompt", Input)
        box.remove_class("shown")
        self._prompt_kind = None

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        kind, text = self._prompt_kind, event.value.strip()
        self.action_cancel_prompt()
        if not text:
            return
        if kind == "break":
            self.add_breakpoint(text)
        elif kind == "eval":
            self.send("eval", self._show_eval, expr=text)
        elif kind == "save":
            name, _, path = text.partition(" ")
            if not path.strip():
                self.notify("write NAME PATH, e.g. 'out0 /tmp/out0.pt'", severity="error")
                return
            self.send("save", lambda p: self.notify(f"saved {name} to {p}"), name=name, path=path.strip())

    def add_breakpoint(self, spec: str) -> None:
        def added(bp: dict[str, Any]) -> None:
            self.notify(f"breakpoint {bp['id']}: {bp['spec']}")
            self._refresh_state()

        self.send("break_add", added, spec=spec)

    def _show_eval(self, result: dict[str, Any]) -> None:
        text = result["repr"]
        t = result.get("tensor")
        if t:
            text = (f"{t['dtype']}[{'x'.join(map(str, t['shape']))}] min {t['min']} max {t['max']} "
                    f"NaN {t['nan']} Inf {t['inf']}\n{text}")
        self._main("#evalout", Static).update(escape(text))

    def action_toggle(self, enable: bool) -> None:
        lv = self._main("#breaks", ListView)
        if lv.index is None or not 0 <= lv.index < len(self.breakpoints):
            self.notify("select a breakpoint in the list first (Tab to it)", severity="warning")
            return
        bp = self.breakpoints[lv.index]
        self.send("break_enable" if enable else "break_disable", lambda _: self._refresh_state(), bp=bp["id"])

    def action_browse(self) -> None:
        from gprof_tui.browse import BrowseScreen

        if self.run_dir is None:
            self.notify("no step recorded yet: browse works once a step has been saved", severity="warning")
            return
        try:
            run = open_run(self.run_dir)
            screen = BrowseScreen(run, on_break=self.add_breakpoint)
        except StoreError as e:
            self.notify(str(e), severity="error")
            return
        self.push_screen(screen)

    def action_help(self) -> None:
        self.push_screen(HelpScreen("debug"))

    def action_quit_debugger(self) -> None:
        self.exit()

    def on_unmount(self) -> None:
        """However the UI ends (q, Ctrl+C), the program must not stay paused without a UI."""
        client = self.client
        if client is not None and not client.closed:
            client.on_event = lambda event: None  # the screens are going away
            try:
                client.request("detach", timeout=5)
            except (DebugCommandError, DebugConnectionError, TimeoutError):
                pass
            client.close()
