"""torch-gprof tui RUN [--step N] [--rank R]: browse a recorded run in the terminal."""
from __future__ import annotations

import argparse

from gprof.store import open_run


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--step", type=int, help="step to open first (default: the last)")
    p.add_argument("--rank", type=int, help="rank to open first (default: the lowest)")


def run(args: argparse.Namespace) -> int:
    from gprof_tui.browse import BrowseApp

    run_obj = open_run(args.run, args.run_name)
    run_obj.file(args.step, args.rank)  # a missing step or rank is a clear error before the screen opens
    BrowseApp(run_obj, args.step, args.rank).run()
    return 0
