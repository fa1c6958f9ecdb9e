"""torch-gprof tui RUN [--step N] [--rank R]: browse a recorded run in the terminal."""
from __future__ import annotations

import argparse
import sys

from gprof.store import StepReader, open_run
from gprof.store.decode import integer
from gprof.store.queries import newest_readable


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--step", type=integer, help="step to open first (default: the last readable one)")
    p.add_argument("--rank", type=integer, help="rank to open first (default: the lowest)")


def run(args: argparse.Namespace) -> int:
    from gprof_tui.browse import BrowseApp

    run_obj = open_run(args.run, args.run_name)
    # The first step is opened here, before the screen is: a missing step or rank, or a file that
    # cannot be read, is a clear error (StoreError, exit 2) instead of a traceback inside Textual.
    if args.step is None:
        first, skipped = newest_readable(run_obj, args.rank)
        for f, e in skipped:
            print(f"torch-gprof tui: skipped step {f.step} rank {f.rank}: {e}", file=sys.stderr)
    else:
        first = run_obj.file(args.step, args.rank)
        StepReader(first.path).close()
    BrowseApp(run_obj, first.step, first.rank).run()
    return 0
