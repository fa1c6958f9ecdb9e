"""Child side of ``torch-gprof debug``: run a user script with a debug server attached.

``python -m gprof.debug.runner --address-file F [--break SPEC]... [--wrap|--no-wrap] script.py [args]``

Every ``gprof.profile`` the script enters gets the debugger. A script that does not import gprof
is recorded whole, each ``optimizer.step()`` ending a step (``step_boundary="optimizer"``), under
``--logdir``/``--run``; ranks it starts with ``mp.spawn`` are each recorded and debugged
(gprof/debug/spawn.py). ``--wrap`` / ``--no-wrap`` force the choice.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import os
import runpy
import sys
from collections.abc import Iterator

from gprof.debug import DEFAULT_BREAKS, DebugSession
from gprof.debug.controller import STOP_MESSAGE


@contextlib.contextmanager
def observe_every_profile(session: DebugSession) -> Iterator[None]:
    """Attach the debugger to each ``gprof.profile`` entered while this is active."""
    from gprof.capture.profile import profile

    def hook(prof: profile) -> None:
        session.observe(prof)

    profile.enter_hooks.append(hook)
    try:
        yield
    finally:
        profile.enter_hooks.remove(hook)


def uses_gprof(script: str) -> bool:
    """Whether the script imports gprof itself (then it opens its own profiles)."""
    try:
        with open(script, "rb") as f:
            tree = ast.parse(f.read(), script)
    except (OSError, SyntaxError, ValueError):
        return False
    for n in ast.walk(tree):
        names = [a.name for a in n.names] if isinstance(n, ast.Import) else (
            [n.module or ""] if isinstance(n, ast.ImportFrom) else [])
        if any(name == "gprof" or name.startswith("gprof.") for name in names):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gprof.debug.runner")
    p.add_argument("--address-file", required=True)
    p.add_argument("--address", default="127.0.0.1:0")
    p.add_argument("--break", dest="breaks", action="append", default=[])
    p.add_argument("--wrap", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--logdir", default="runs")
    p.add_argument("--run", default=None)
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    breaks = a.breaks or list(DEFAULT_BREAKS)
    # the parent attaches its UI as soon as the server is up: a hit before then waits for it
    session = DebugSession(breaks, a.address, wait=True)
    session.server.write_address_file(a.address_file)
    sys.argv = [a.script, *a.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.script)))
    wrap = a.wrap if a.wrap is not None else not uses_gprof(a.script)
    run = a.run or os.path.splitext(os.path.basename(a.script))[0]
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(observe_every_profile(session))
            if wrap:
                import gprof
                from gprof.debug.spawn import debug_spawned_ranks

                print(f"torch-gprof debug: recording {a.script} under {a.logdir}/{run}; each optimizer.step() ends "
                      "a step", flush=True)
                launcher = stack.enter_context(gprof.profile(logdir=a.logdir, run=run, step_boundary="optimizer"))
                stack.enter_context(debug_spawned_ranks(session, a.logdir, run, breaks, launcher))
            runpy.run_path(a.script, run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt as e:
        if str(e) != STOP_MESSAGE:
            raise
        print(f"torch-gprof debug: {a.script} stopped from the debugger (KeyboardInterrupt in the training thread); "
              "the step it was in is saved as incomplete", file=sys.stderr, flush=True)
        return 130
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
