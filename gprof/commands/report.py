"""torch-gprof report RUN [--step N] [--rank R] [--json]

The whole report: ``gprof.report``'s per-step summaries plus, for a multi-rank run,
``gprof.distributed``'s cross-rank section. The two are siblings over the read layer, so they meet
here, one layer up.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

from gprof.distributed import cross_rank_report, format_cross_rank
from gprof.report import dumps, format_report, run_report
from gprof.store import Run, open_run


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--step", type=int, help="only this step (default: the last step; with --json: every step)")
    p.add_argument("--rank", type=int, help="only this rank")
    p.add_argument("--all-steps", action="store_true", help="every step, in text too")
    p.add_argument("--json", action="store_true", help="JSON output (schema: docs/report-schema.md)")


def full_report(run: Run, step: int | None = None, rank: int | None = None) -> dict[str, Any]:
    """The report JSON: every step (or one step/rank), with ``cross_rank`` when the run has several ranks."""
    report = run_report(run, step=step, rank=rank)
    if len(run.ranks()) > 1:
        report["cross_rank"] = cross_rank_report(run, step=step)
    return report


def format_full_report(report: dict[str, Any]) -> str:
    """The text of :func:`full_report`'s JSON."""
    return format_report(report, [format_cross_rank(report["cross_rank"])] if "cross_rank" in report else [])


def print_run_report(path: str | os.PathLike[str], out: IO[str], step: int | None = None) -> None:
    """The text report of ``step`` (default: the last) of the run at ``path``; what the examples print."""
    run = open_run(path)
    if step is None:
        steps = run.steps()
        step = steps[-1] if steps else None
    out.write(format_full_report(full_report(run, step=step)) + "\n")


def run(args: argparse.Namespace) -> int:
    run = open_run(args.run, args.run_name)
    step = args.step
    if step is None and not args.json and not args.all_steps:
        steps = run.steps()
        step = steps[-1] if steps else None
    report = full_report(run, step=step, rank=args.rank)
    sys.stdout.write((dumps(report) if args.json else format_full_report(report)) + "\n")
    return 0
