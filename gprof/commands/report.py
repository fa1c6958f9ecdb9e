"""torch-gprof report RUN [--step N] [--rank R] [--json]"""
from __future__ import annotations

import argparse
import sys

from gprof.report import dumps, format_report, run_report
from gprof.store import open_run


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--step", type=int, help="only this step (default: the last step; with --json: every step)")
    p.add_argument("--rank", type=int, help="only this rank")
    p.add_argument("--all-steps", action="store_true", help="every step, in text too")
    p.add_argument("--json", action="store_true", help="JSON output (schema: docs/report-schema.md)")


def run(args: argparse.Namespace) -> int:
    run = open_run(args.run, args.run_name)
    step = args.step
    if step is None and not args.json and not args.all_steps:
        steps = run.steps()
        step = steps[-1] if steps else None
    report = run_report(run, step=step, rank=args.rank)
    sys.stdout.write((dumps(report) if args.json else format_report(report)) + "\n")
    return 0
