"""torch-gprof report RUN [--step N] [--rank R] [--target cpu|cuda] [--gpu NAME] [--json]

The whole report: ``gprof.report``'s per-step summaries plus, for a multi-rank run,
``gprof.distributed``'s cross-rank section. The two are siblings over the read layer, so they meet
here, one layer up. ``--target``/``--gpu`` re-run the target-dependent analyses on the stored steps
without torch; only a step file written before op facts were stored needs torch (then imported here).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

from gprof.analyses.gpu_specs import GPUS
from gprof.analyses.runner import TARGETS, check_target
from gprof.distributed import cross_rank_report, format_cross_rank
from gprof.report import dumps, format_report, run_report, skipped_file
from gprof.store import Run, StoreError, open_run
from gprof.store.decode import integer
from gprof.store.queries.ranks import run_listing
from gprof.store.queries.retarget import NeedsTorchError


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--step", type=integer, help="only this step (default: the last step; with --json: every step)")
    p.add_argument("--rank", type=integer, help="only this rank")
    p.add_argument("--session", help="the steps of this session, when several runs wrote under one name "
                                     "(default: the newest; the report lists them)")
    p.add_argument("--all-steps", action="store_true", help="every step, in text too")
    p.add_argument("--json", action="store_true", help="JSON output (schema: docs/report-schema.md)")
    p.add_argument("--target", choices=TARGETS, help="predict fusion for this Inductor backend: cpu (C++) or cuda "
                                                     "(Triton); default: the stored prediction, made for the step's "
                                                     "device or the profile's target")
    p.add_argument("--gpu", type=gpu_arg, help=f"the GPU a cuda prediction is priced for (implies --target cuda; "
                                            f"default: the step's GPU, else H100): {', '.join(GPUS)}")


def gpu_arg(name: str) -> str:
    """argparse type of ``--gpu``: a typo is a usage error naming the known GPUs."""
    try:
        return check_target("cuda", name)[1] or name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def full_report(run: Run, step: int | None = None, rank: int | None = None,
                skipped: list[dict[str, Any]] | None = None, target: str | None = None,
                gpu: str | None = None) -> dict[str, Any]:
    """The report JSON: every step (or one step/rank), with ``cross_rank`` when the run has several ranks.
    Its ``skipped`` lists every unreadable file left out (:func:`gprof.report.run_report`'s, the
    cross-rank section's, and ``skipped``: those a caller passed over already); absent when none was.
    ``target``/``gpu``: the fusion prediction re-targeted (see :func:`gprof.report.run_report`)."""
    report = run_report(run, step=step, rank=rank, target=target, gpu=gpu)
    if len(run.ranks()) > 1:
        report["cross_rank"] = cross_rank_report(run, step=step)
    found = {s["file"]: s for s in [*(skipped or []), *report.pop("skipped", [])]}
    for s in report.get("cross_rank", {}).get("steps", []):
        for u in s.get("unreadable_ranks", []):
            found.setdefault(u["file"], {"file": u["file"], "step": s["step"], "rank": u["rank"], "error": u["error"]})
    if found:
        report["skipped"] = sorted(found.values(), key=lambda s: (s["step"], s["rank"]))
    return report


def newest_report(run: Run, rank: int | None = None, target: str | None = None,
                  gpu: str | None = None) -> dict[str, Any]:
    """What the text report shows by default: the newest step ``rank`` (default: the lowest) can
    report on; newer files that cannot be read are passed over and listed under ``skipped``."""
    skipped: list[dict[str, Any]] = []
    newest = run.file(None, rank)
    for f in reversed([f for f in run.files() if f.rank == newest.rank]):
        try:
            return full_report(run, step=f.step, rank=rank, skipped=skipped, target=target, gpu=gpu)
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


def _report(run: Run, args: argparse.Namespace, target: str | None, gpu: str | None) -> dict[str, Any]:
    if args.step is None and not args.json and not args.all_steps:
        return newest_report(run, args.rank, target, gpu)
    return full_report(run, step=args.step, rank=args.rank, target=target, gpu=gpu)


def _retargeted_with_torch(run: Run, args: argparse.Namespace, target: str | None, gpu: str | None,
                           why: NeedsTorchError) -> dict[str, Any]:
    """The re-targeted report of a run whose files predate stored op facts: torch classifies their ops
    here, the one place a reader imports it (said on stderr, as it costs seconds)."""
    sys.stderr.write(f"torch-gprof report: {why}; importing torch\n")
    try:
        from gprof.analyses import use_torch

        use_torch()
    except ImportError:
        raise StoreError(f"{why}; torch is not installed here") from None
    return _report(run, args, target, gpu)


def run(args: argparse.Namespace) -> int:
    try:
        target, gpu = check_target(args.target, args.gpu)
    except ValueError as e:
        raise StoreError(str(e)) from None
    run = open_run(args.run, args.run_name)
    if args.session is not None:
        if args.session not in run.sessions():
            raise StoreError(f"run {run.name!r} has no session {args.session!r}; sessions: {', '.join(run.sessions())}")
        run.session = args.session
    try:
        report = _report(run, args, target, gpu)
    except NeedsTorchError as e:
        report = _retargeted_with_torch(run, args, target, gpu, e)
    report = with_sessions(_checked(report, sys.stderr), run)
    sys.stdout.write((dumps(report) if args.json else format_full_report(report)) + "\n")
    return 0
