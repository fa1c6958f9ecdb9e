"""torch-gprof debug [--break SPEC]... script.py [args]: run a script under the recorder with a
debug server, in a child process, and attach the terminal UI to it."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from gprof.debug.client import DebugClient
from gprof.debug.spec import BreakpointSpecError, parse_breakpoint


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--break", dest="breaks", action="append", default=[], metavar="SPEC",
                   help="breakpoint (repeatable): nan, inf, 'absmax > X', @module[:phase], op[:phase], a node key, "
                        "'TARGET if COND' (docs/debugger.md). Default: nan (anomaly mode)")
    p.add_argument("--wrap", action=argparse.BooleanOptionalAction, default=None,
                   help="record the whole script, each optimizer.step() ending a step (the default for a script "
                        "that does not import gprof; --no-wrap: only the script's own gprof.profile blocks)")
    p.add_argument("--logdir", default="runs", help="where a wrapped script is recorded (default: runs)")
    p.add_argument("--run", default=None, help="run name of a wrapped script (default: the script's name)")
    p.add_argument("--address", default="127.0.0.1:0", help="where the debug server listens: 127.0.0.1:PORT or unix:/path")
    p.add_argument("script", help="the Python script to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")


def run(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.script):
        print(f"torch-gprof debug: {args.script}: no such script (give the path of a .py file to run)", file=sys.stderr)
        return 2
    for spec in args.breaks:  # a bad spec fails here, before anything starts
        try:
            parse_breakpoint(spec)
        except BreakpointSpecError as e:
            print(f"torch-gprof debug: {e}", file=sys.stderr)
            return 2
    from gprof_tui.child import DebuggedScript
    from gprof_tui.debug import DebugApp

    child = DebuggedScript(args.script, args.args, args.breaks, wrap=args.wrap, logdir=args.logdir,
                           run=args.run, address=args.address)

    def connect(on_event: Callable[[dict[str, Any]], None]) -> DebugClient:  # on the app's connect thread
        address, token = child.wait_for_server()
        return DebugClient(address, token, on_event)

    DebugApp(connect, title=f"{args.script}: starting", output=child.redirect, wait_exit=child.proc.wait).run()
    # the TUI is gone: show the script's whole output here, and let it finish
    for line in child.redirect(lambda line: print(line, flush=True)):
        print(line)
    code = child.finish()
    print(f"torch-gprof debug: {args.script} exited with code {code}", file=sys.stderr)
    return code
