"""The live debugger: shows a pause of a (possibly remote, possibly other-thread) training step
and drives it over the debug protocol. It never touches the debugged process otherwise. The
panes are widgets composed by ``DebugScreen``; this app holds the protocol state and the keys."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from gprof.debug.client import DebugClient, DebugCommandError, DebugConnectionError, resolve_target
from gprof.store import StoreError, open_run
from gprof_tui.debug_screen import DebugScreen
from gprof_tui.help import HelpScreen
from gprof_tui.messages import PromptSubmitted
from gprof_tui.widgets.breakpoints import BreakpointList
from gprof_tui.widgets.pause_view import PauseView
from gprof_tui.widgets.prompt import Prompt


class DebugApp(App):
    """``connect(on_event) -> DebugClient`` is called on a worker thread (it may wait for a child
    process to start its server). With a child process, ``output(sink) -> lines so far`` feeds the
    log pane and ``wait_exit() -> exit code`` blocks until the program ends."""

    TITLE = "torch-gprof debug"
    #: no ctrl+p palette: it would take footer room at 100 columns, and help lists only our keys
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+c", "quit_debugger", "detach", show=False)]

    def __init__(self, connect: Callable[[Callable[[dict[str, Any]], None]], DebugClient], title: str = "",
                 output: Callable[[Callable[[str], None]], list[str]] | None = None,
                 wait_exit: Callable[[], int] | None = None) -> None:
        super().__init__()
        self._connect = connect
        self._output = output
        self._wait_exit = wait_exit
        self.client: DebugClient | None = None
        self._editing: int | None = None
        self.pause: dict[str, Any] | None = None
        self.breakpoints: list[dict[str, Any]] = []
        self.run_dir: str | None = None
        self.finished: str | None = None
        self.rank: int | None = None
        #: the selected user frame of the pause (0: innermost), for the source pane and x
        self.frame_index = 0
        #: spawned ranks (gprof/debug/spawn.py): their run directory and how many there are
        self.ranks: dict[str, Any] | None = None
        self._status = "running"
        self.sub_title = title or "connecting..."
        self.main = DebugScreen()

    def get_default_screen(self) -> Screen:
        return self.main

    def on_ready(self) -> None:
        """Starts the connection and the output feed once the screen is drawn (at mount, the
        default screen has not composed its panes yet)."""
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
        loop = self._loop
        if loop is None or loop.is_closed():  # the app already exited
            return
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
        self.main.log_line(line)

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "hello":
            self.breakpoints = event.get("breakpoints", [])
            self.run_dir = event.get("run_dir") or self.run_dir
            self.rank = event.get("rank")
            self._show_breakpoints()
            self._set_status(f"attached to pid {event.get('pid')}: running")
            if event.get("paused"):
                self._show_pause(event["paused"])
            if event.get("ranks") and self.ranks is None:
                self._follow_ranks(event["ranks"])
        elif kind == "paused":
            self._show_pause(event["pause"])
            self._refresh_state()
        elif kind == "running":
            self._set_status("stopping..." if event.get("mode") == "stopping" else f"running ({event.get('mode')})")
            self.main.show_running()
        elif kind == "step_saved":  # in the header, not a toast: one per step would pile up
            self.run_dir = event.get("run_dir") or self.run_dir
            if self.pause is None:
                self._set_status(f"running (step {event['step']} recorded)")
        elif kind in ("breakpoint_error", "breakpoint_warning"):
            bp = event["bp"]
            self.notify(f"breakpoint {bp['id']} ({bp['spec']}): {bp['error'] or bp['warning']}",
                        severity="warning", timeout=10)
            self._refresh_state()
        elif kind == "ranks" and self.ranks is None:
            self._follow_ranks(event)
        elif kind == "disconnected" and self.finished is None and self._wait_exit is None:
            self._set_finished("the program went away (finished or killed)")

    def _set_status(self, text: str) -> None:
        """The header's second line: which rank, then what the program is doing."""
        self._status = text
        rank = "" if self.rank is None else f"rank {self.rank}  "
        self.sub_title = rank + text

    def _set_finished(self, text: str) -> None:
        self.finished = text
        self.pause = None
        self._set_status(text + "  (q quits)")
        self.main.show_finished(text)

    def _show_pause(self, p: dict[str, Any]) -> None:
        self.pause = p
        self.frame_index = 0
        where = f"{p['op']} in {p['module'] if p['module'] is not None else '-'} ({p['phase']})" if p.get("op") else p["reason"]
        self._set_status(f"{'POST-MORTEM' if p.get('kind') == 'post_mortem' else 'PAUSED'} at {where}")
        self.main.show_pause(p)

    def _show_breakpoints(self) -> None:
        self.main.query_one(BreakpointList).show(self.breakpoints)

    # ------------------------------------------------------------------ ranks
    def _follow_ranks(self, ranks: dict[str, Any]) -> None:
        """Spawned ranks each serve a debugger: follow rank 0's, which waits for this UI."""
        self.ranks = ranks
        self.notify(f"{ranks['world_size']} spawned ranks: following rank 0 ({{ and }} switch ranks)")
        self.action_rank(0, absolute=True)

    def action_rank(self, delta: int, absolute: bool = False) -> None:
        if self.ranks is None:
            self.notify("one process: no other rank to follow (spawned ranks are followed automatically)")
            return
        current = self.rank if self.rank is not None and not absolute else 0
        target = (current + delta) % self.ranks["world_size"] if not absolute else delta
        threading.Thread(target=self._switch_thread, args=(target,), name="gprof-tui-rank", daemon=True).start()

    def _switch_thread(self, rank: int) -> None:
        """Connect to rank ``rank``'s server (its address file may take a moment to appear)."""
        assert self.ranks is not None
        world = self.ranks["world_size"]
        deadline = time.monotonic() + 60
        while True:
            try:
                address, token = resolve_target(self.ranks["run_dir"], rank)
                client = DebugClient(address, token, self._event_from_thread)
                if (client.hello.get("rank"), client.hello.get("world_size")) == (rank, world):
                    break
                # an address file of another process (a stale one, or a launcher that is no rank):
                # the spawned rank writes its own over it when it starts
                client.on_event = lambda event: None
                client.close()
                raise DebugConnectionError(f"the server there is not rank {rank} of {world}")
            except DebugConnectionError as e:
                if time.monotonic() > deadline:
                    self._from_thread(self._set_status, f"cannot follow rank {rank}: {e}")
                    return
                time.sleep(0.2)
        self._from_thread(self._switched, client)

    def _switched(self, client: DebugClient) -> None:
        old, self.client = self.client, client
        if old is not None:
            old.on_event = lambda event: None  # the old rank's events are no longer ours
            old.close()
        self.pause = None
        self.main.show_running(f"following rank {client.hello.get('rank')}...")
        self.handle_event({"event": "hello", **client.hello})
        self._refresh_state()

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
        self.main.query_one(Prompt).ask(kind)

    def action_cancel_prompt(self) -> None:
        self.main.query_one(Prompt).cancel()

    @on(PromptSubmitted)
    def _submitted(self, event: PromptSubmitted) -> None:
        kind, text = event.kind, event.text
        if kind == "break":
            self.add_breakpoint(text)
        elif kind == "eval":
            self.send("eval", self.main.query_one(PauseView).show_eval, expr=text, frame=self.frame_index)
        elif kind == "edit":
            self.send("break_edit", lambda _: self._refresh_state(), bp=self._editing, spec=text)
        elif kind == "save":
            name, _, path = text.partition(" ")
            if not path.strip():
                self.notify("write NAME PATH, e.g. 'out0 /tmp/out0.pt'", severity="error")
                return
            self.send("save", lambda p: self.notify(f"saved {name} to {p}"), name=name, path=path.strip(),
                      frame=self.frame_index)

    def add_breakpoint(self, spec: str) -> None:
        def added(bp: dict[str, Any]) -> None:
            self.notify(f"breakpoint {bp['id']}: {bp['spec']}")
            self._refresh_state()

        self.send("break_add", added, spec=spec)

    def _selected_breakpoint(self) -> dict[str, Any] | None:
        bp = self.main.query_one(BreakpointList).selected(self.breakpoints)
        if bp is None:
            self.notify("select a breakpoint in the list first (Tab to it)", severity="warning")
        return bp

    def action_toggle_breakpoint(self) -> None:
        bp = self._selected_breakpoint()
        if bp is not None:
            self.send("break_disable" if bp["enabled"] else "break_enable", lambda _: self._refresh_state(), bp=bp["id"])

    def action_delete_breakpoint(self) -> None:
        bp = self._selected_breakpoint()
        if bp is not None:
            self.send("break_remove", lambda _: self._refresh_state(), bp=bp["id"])

    def action_edit_breakpoint(self) -> None:
        bp = self._selected_breakpoint()
        if bp is not None:
            self._editing = bp["id"]
            self.main.query_one(Prompt).ask("edit", bp["spec"])

    def action_frame(self, delta: int) -> None:
        """Move up (+1, outer) or down (-1, inner) the user stack of the pause."""
        p = self.pause
        frames = (p or {}).get("frames") or []
        if p is None or not frames:
            self.notify("no user frames here" if p else "not paused", severity="warning")
            return
        index = self.frame_index + delta
        if not 0 <= index < len(frames):
            self.notify("outermost frame" if delta > 0 else "innermost frame")
            return

        def got(frame: dict[str, Any]) -> None:
            if self.pause is p:
                self.frame_index = index
                self.main.show_frame(p, frame, index)

        self.send("frame", got, frame=index)

    def action_pause_now(self) -> None:
        if self.pause is not None:
            self.notify("already paused")
            return
        self.send("pause", lambda _: self._set_status("pausing at the next op..."))

    def action_stop(self) -> None:
        self.pause = None
        self.send("stop", lambda _: self._set_status("stopping: KeyboardInterrupt at the next op"))

    def action_browse(self) -> None:
        from gprof_tui.browse import BrowseScreen

        if self.run_dir is None:
            self.notify("no step recorded yet: browse works once a step has been saved", severity="warning")
            return
        try:
            run = open_run(self.run_dir)
            screen = BrowseScreen(run, rank=self.rank, on_break=self.add_breakpoint)
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
