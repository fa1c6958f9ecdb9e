"""Child side of ``torch-gprof debug``: run a user script with a debug server attached.

``python -m gprof.debug.runner --address-file F [--break SPEC]... [--wrap] script.py [args]``

Every ``gprof.profile`` the script enters gets the debugger. A script that never uses gprof runs
with ``--wrap``: the whole script is then recorded as one step under ``--logdir``/``--run``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys
from collections.abc import Iterator

from gprof.debug import DEFAULT_BREAKS, DebugSession


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gprof.debug.runner")
    p.add_argument("--address-file", required=True)
    p.add_argument("--address", default="127.0.0.1:0")
    p.add_argument("--break", dest="breaks", action="append", default=[])
    p.add_argument("--wrap", action="store_true")
    p.add_argument("--logdir", default="runs")
    p.add_argument("--run", default=None)
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    # the parent attaches its UI as soon as the server is up: a hit before then waits for it
    session = DebugSession(a.breaks or DEFAULT_BREAKS, a.address, wait=True)
    session.server.write_address_file(a.address_file)
    sys.argv = [a.script, *a.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.script)))
    try:
        with observe_every_profile(session):
            if a.wrap:
                import gprof

                run = a.run or os.path.splitext(os.path.basename(a.script))[0]
                with gprof.profile(logdir=a.logdir, run=run):
                    runpy.run_path(a.script, run_name="__main__")
            else:
                runpy.run_path(a.script, run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
