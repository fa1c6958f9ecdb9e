"""``torch-gprof report``: the step summaries as JSON (schema: docs/report-schema.md) and as text.

The numbers come from the read layer (``gprof.store.queries``), which aggregates inside the step
file, so a report on a million-node step reads a few hundred rows, not the step. This module adds
only the report's envelope and its text; the cross-rank section of a multi-rank run is
``gprof.distributed``'s, joined in by :mod:`gprof.commands.report`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gprof.graph.formatting import fmt_bytes, fmt_flops, fmt_ns
from gprof.store import Run, StepFile, StepReader, StoreError
from gprof.store.queries import step_summary
from gprof.store.queries.findings import format_findings, step_findings
from gprof.store.queries.retarget import analyses_for

REPORT_SCHEMA_VERSION = 1


def run_report(run: Run, step: int | None = None, rank: int | None = None, target: str | None = None,
               gpu: str | None = None) -> dict[str, Any]:
    """The report of every step and rank of ``run``, or of one (step, rank), without ``cross_rank``.
    With a fusion ``target`` or ``gpu``, the target-dependent analyses are re-run on each stored step
    (:func:`gprof.store.queries.retarget.analyses_for`); without, the stored results are reported.

    Of every step, a file that cannot be read is listed under ``skipped`` and the others are
    reported: one bad file must not hide a run. The one file asked for by step or rank raises
    StoreError instead, since then there is nothing else to show.
    """
    if step is not None or rank is not None:
        f = run.file(step, rank)
        return _envelope(run, [_summary(f, target, gpu)], [])
    steps, skipped = [], []
    for f in run.files():
        try:
            steps.append(_summary(f, target, gpu))
        except StoreError as e:
            skipped.append(skipped_file(f, e))
    return _envelope(run, steps, skipped)


def _summary(f: StepFile, target: str | None, gpu: str | None) -> dict[str, Any]:
    with StepReader(f.path) as r:
        s = step_summary(r)
        if target is not None or gpu is not None:
            s.update(analyses_for(r, target, gpu))
        return s


def _envelope(run: Run, steps: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"schema_version": REPORT_SCHEMA_VERSION, "run": run.name, "path": str(run.path), "steps": steps}
    return {**out, "skipped": skipped} if skipped else out


def skipped_file(f: StepFile, error: StoreError) -> dict[str, Any]:
    """A ``skipped`` entry of the report: the file a reader could not read, and why."""
    return {"file": str(f.path), "step": f.step, "rank": f.rank, "error": str(error)}


# ------------------------------------------------------------------------------------ text
def format_step(s: dict[str, Any], depth: int = 2) -> str:
    lines = []
    status = "complete" if s["complete"] else f"INCOMPLETE ({s['error']})"
    lines.append(f"== step {s['step']}  rank {s['rank']}/{s['world_size']}  {status}")
    lines.append(
        f"   {s['nodes']:,} nodes ({', '.join(f'{p} {n}' for p, n in s['phases'].items() if n)}); "
        f"op time {fmt_ns(s['time_ns'])} of {fmt_ns(s['wall_ns'])} wall; {fmt_flops(s['flops'])}FLOP")
    lines.append(f"   module coverage {s['module_coverage']:.1%}, backward linked {s['backward_linked']:.1%}")
    pk = s["peak_node"]
    if pk:
        cats = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in sorted(s["memory_by_category"].items(), key=lambda kv: -kv[1]))
        lines.append(f"   peak memory {fmt_bytes(s['peak_memory_bytes'])} at node {pk['idx']} "
                     f"{pk['op']} ({pk['phase']}, {pk['module'] if pk['module'] is not None else '-'})")
        lines.append(f"     by category: {cats}")
    if s.get("aggregate_only"):
        lines.append("   NOTE: node cap reached; the rest of the step is in per-op aggregates only")
    lines.append("")
    lines.append("   top ops by time                          count      total       mean")
    total = s["time_ns"] or 1
    for o in s["top_ops"][:10]:
        lines.append(f"   {o['op'][:38]:<38} {o['count']:>7} {fmt_ns(o['total_ns']):>10} {fmt_ns(o['mean_ns']):>10}"
                     f"  {o['total_ns'] / total:5.1%}")
    lines.append("")
    lines.append("   module (inclusive)                     forward   backward     alloc     saved")
    for e in s["modules"]:
        name = e["module"]
        level = 0 if name == "" else name.count(".") + 1
        if level > depth:
            continue
        label = ("  " * level) + (name.rsplit(".", 1)[-1] if name else "(root)")
        lines.append(f"   {label[:36]:<36} {fmt_ns(e['forward_ns']):>10} {fmt_ns(e['backward_ns']):>10} "
                     f"{fmt_bytes(e['alloc_bytes']):>10} {fmt_bytes(e['saved_activation_bytes']):>10}")
    lines.extend(_checkpointing(s, depth))
    found = _findings(s)
    if found:
        lines.append("")
        lines.extend(found)
    extra = format_analyses(s)
    if extra:
        lines.append("")
        lines.extend(extra)
    return "\n".join(lines)


def _checkpointing(s: dict[str, Any], depth: int) -> list[str]:
    """Per module, what activation checkpointing costs (recompute time) and what it saves (activation
    bytes backward read from the recomputation instead of from forward); nothing without it."""
    rows = [e for e in s["modules"] if e.get("recompute_ns") and (e["module"].count(".") + 1 if e["module"] else 0) <= depth]
    if not rows:
        return []
    out = ["", f"   activation checkpointing (recompute linked {s.get('recompute_linked', 1.0):.1%})"
               "        recompute  act. saved"]
    for e in rows:
        name = e["module"] or "(root)"
        out.append(f"   {name[:52]:<52} {fmt_ns(e['recompute_ns']):>10} "
                   f"{fmt_bytes(e.get('recomputed_activation_bytes', 0)):>10}")
    return out


def _findings(s: dict[str, Any]) -> list[str]:
    """The step's findings ranked by saving, numbered as the TensorBoard tab numbers them (both call
    ``step_findings`` on the same stored results), so "finding 3" names one thing in both places."""
    pk = s.get("peak_node") or {}
    memory = {"peak_bytes": s.get("peak_memory_bytes"), "peak_node": pk.get("idx"),
              "saved_activations": s.get("saved_activations")}
    return format_findings(step_findings(s, memory, (), s.get("time_ns") or 0))


def format_analyses(s: dict[str, Any]) -> list[str]:
    """Text for the analysis results stored with the step (each analysis owns its formatter).

    Each result is formatted on its own, so a stored result of a shape its formatter does not
    expect (a damaged file, another version's analysis) costs one line, not the report.
    """
    from gprof.analyses.text import format_results, formatters

    names = [name for name, _ in formatters()]
    rest = {k: v for k, v in s.items() if k not in names}
    lines: list[str] = []
    for name in names:
        if s.get(name) is None:
            continue
        try:
            lines += format_results({**rest, name: s[name]})
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            lines.append(f"   {name}: stored result unreadable ({type(e).__name__}: {e})")
    return lines


def format_report(report: dict[str, Any], sections: Sequence[Sequence[str]] = ()) -> str:
    """The report's text; ``sections`` are further blocks of lines (the cross-rank section)."""
    head = f"torch-gprof report: run {report['run']} ({report['path']})"
    parts = [head] + [format_step(s) for s in report["steps"]] + ["\n".join(lines) for lines in sections]
    return "\n\n".join(parts)


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False)
