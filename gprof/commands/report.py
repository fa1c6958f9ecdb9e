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
from gprof.report import dumps, format_report, run_report, skipped_file
from gprof.store import Run, StoreError, open_run
from gprof.store.decode import integer
from gprof.store.queries.ranks import run_listing


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--step", type=integer, help="only this step (default: the last step; with --json: every step)")
    p.add_argument("--rank", type=integer, help="only this rank")
    p.add_argument("--session", help="the steps of this session, when several runs wrote under one name "
                                     "(default: the newest; the report lists them)")
    p.add_argument("--all-steps", action="store_true", help="every step, in text too")
    p.add_argument("--json", action="store_true", help="JSON output (schema: docs/report-schema.md)")


def full_report(run: Run, step: int | None = None, rank: int | None = None,
                skipped: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report JSON: every step (or one step/rank), with ``cross_rank`` when the run has several ranks.
    Its ``skipped`` lists every unreadable file left out (:func:`gprof.report.run_report`'s, the
    cross-rank section's, and ``skipped``: those a caller passed over already); absent when none was."""
    report = run_report(run, step=step, rank=rank)
    if len(run.ranks()) > 1:
        report["cross_rank"] = cross_rank_report(run, step=step)
    found = {s["file"]: s for s in [*(skipped or []), *report.pop("skipped", [])]}
    for s in report.get("cross_rank", {}).get("steps", []):
        for u in s.get("unreadable_ranks", []):
            found.setdefault(u["file"], {"file": u["file"], "step": s["step"], "rank": u["rank"], "error": u["error"]})
    if found:
        report["skipped"] = sorted(found.values(), key=lambda s: (s["step"], s["rank"]))
    return report


def newest_report(run: Run, rank: int | None = None) -> dict[str, Any]:
    """What the text report shows by default: the newest step ``rank`` (default: the lowest) can
    report on; newer files that cannot be read are passed over and listed under ``skipped``."""
    skipped: list[dict[str, Any]] = []
    newest = run.file(None, rank)
    for f in reversed([f for f in run.files() if f.rank == newest.rank]):
        try:
            return full_report(run, step=f.step, rank=rank, skipped=skipped)
        except StoreError as e:
            skipped.append(skipped_file(f, e))
    return {"run": run.name, "steps": [], "skipped": skipped}


def _checked(report: dict[str, Any], err: IO[str]) -> dict[str, Any]:
    """``report``, after naming each skipped file on ``err``; StoreError when nothing could be read."""
    for s in report.get("skipped", []):
        err.write(f"torch-gprof report: skipped step {s['step']} rank {s['rank']}: {s['error']}\n")
    if not report["steps"] and report.get("skipped"):
        raise StoreError(f"no readable step in run {report['run']!r}: every file was skipped (listed above)")
    return report


def format_full_report(report: dict[str, Any]) -> str:
    """The text of :func:`full_report`'s JSON."""
    sections = [format_cross_rank(report["cross_rank"])] if "cross_rank" in report else []
    if "sessions" in report:
        sections.append([f"sessions: {', '.join(s + (' (shown)' if s == report['session'] else '') for s in report['sessions'])}"
                         "; `--session ID` shows another"])
    return format_report(report, sections)


def with_sessions(report: dict[str, Any], run: Run) -> dict[str, Any]:
    """``report`` with the sessions that wrote under the run's name, when there are several: the
    files of the session shown (``session``), and the others, so stale steps are not taken for these."""
    listing = run_listing(run)
    return {**report, **{k: listing[k] for k in ("session", "sessions") if k in listing}}


def print_run_report(path: str | os.PathLike[str], out: IO[str], step: int | None = None) -> None:
    """The text report of ``step`` (default: the last) of the run at ``path``; what the examples print."""
    run = open_run(path)
    report = newest_report(run) if step is None else full_report(run, step=step)
    out.write(format_full_report(_checked(report, sys.stderr)) + "\n")


def run(args: argparse.Namespace) -> int:
    run = open_run(args.run, args.run_name)
    if args.session is not None:
        if args.session not in run.sessions():
            raise StoreError(f"run {run.name!r} has no session {args.session!r}; sessions: {', '.join(run.sessions())}")
        run.session = args.session
    if args.step is None and not args.json and not args.all_steps:
        report = newest_report(run, args.rank)
    else:
        report = full_report(run, step=args.step, rank=args.rank)
    report = with_sessions(_checked(report, sys.stderr), run)
    sys.stdout.write((dumps(report) if args.json else format_full_report(report)) + "\n")
    return 0
