"""``torch-gprof report``: the step summary as text or JSON (schema: docs/report-schema.md).

Aggregations run as SQL inside the step file, so a report on a million-node step reads a few
hundred rows, not the step.
"""
from __future__ import annotations

import json
import os
from typing import IO, Any

from gprof.graph.formatting import fmt_bytes, fmt_flops, fmt_ns
from gprof.graph.model import PHASES
from gprof.store import Run, StepReader, open_run

REPORT_SCHEMA_VERSION = 1


def _frac(num: int, den: int) -> float:
    return round(num / den, 6) if den else 1.0


def step_summary(r: StepReader, top: int = 15) -> dict[str, Any]:
    """The JSON object for one (step, rank)."""
    m = r.meta
    phases = {p: 0 for p in PHASES}
    phases.update(dict(r.sql("SELECT phase, COUNT(*) FROM nodes GROUP BY phase")))
    fb_total, fb_mod = r.sql(
        "SELECT COUNT(*), COUNT(module) FROM nodes WHERE phase IN ('forward', 'backward')")[0]
    bw_total, bw_linked = r.sql(
        "SELECT COUNT(*), SUM(fwd IS NOT NULL OR param IS NOT NULL) FROM nodes WHERE phase = 'backward'")[0]
    time_ns, flops = r.sql("SELECT COALESCE(SUM(dur_ns), 0), COALESCE(SUM(flops), 0) FROM nodes")[0]
    device_ns = r.sql("SELECT SUM(device_ns) FROM nodes")[0][0]
    peak = r.node(r.memory.peak_node) if r.memory.peak_node is not None else None
    ops = [
        {"op": op, "count": c, "total_ns": t, "mean_ns": t // c if c else 0, "flops": f}
        for op, c, t, f in r.sql(
            "SELECT op, SUM(count), SUM(dur_ns), SUM(flops) FROM agg_op_stats GROUP BY op ORDER BY SUM(dur_ns) DESC "
            "LIMIT ?", (top,))
    ]
    modules = module_table(r)
    out: dict[str, Any] = {
        "step": m.step,
        "rank": m.rank,
        "world_size": m.world_size,
        "complete": m.complete,
        "error": m.error,
        "nodes": r.count(),
        "phases": phases,
        "module_coverage": _frac(fb_mod, fb_total),
        "backward_linked": _frac(bw_linked or 0, bw_total),
        "time_ns": time_ns,
        "device_time_ns": device_ns,
        "wall_ns": m.wall_ns,
        "peak_memory_bytes": r.memory.peak_bytes,
        "peak_node": None if peak is None else {
            "idx": peak.idx, "key": peak.key, "op": peak.op, "module": peak.module, "phase": peak.phase},
        "memory_by_category": r.memory.by_category,
        "saved_activations": r.memory.saved_activations,
        "flops": flops,
        "aggregate_only": m.aggregate_only,
        "aggregates": r.aggregates(),
        "top_ops": ops,
        "modules": modules,
    }
    if m.extra.get("kineto_trace"):
        out["kineto_trace"] = m.extra["kineto_trace"]
    for name, value in r.analyses().items():
        out.setdefault(name, value)
    return out


def module_table(r: StepReader) -> list[dict[str, Any]]:
    """Per module, inclusive of submodules: forward/backward time, allocations, saved activations."""
    rows = r.sql(  # from the aggregates written with the step
        "SELECT module, phase, SUM(count), SUM(dur_ns), SUM(alloc_bytes), SUM(flops) FROM agg_op_stats "
        "WHERE module IS NOT NULL GROUP BY module, phase")
    agg: dict[str, dict[str, Any]] = {}
    saved = r.memory.saved_activations

    def entry(name: str) -> dict[str, Any]:
        e = agg.get(name)
        if e is None:
            e = agg[name] = {"module": name, "forward_ns": 0, "backward_ns": 0, "optimizer_ns": 0, "other_ns": 0,
                             "nodes": 0, "alloc_bytes": 0, "flops": 0, "saved_activation_bytes": 0}
        return e

    for module, phase, count, dur, alloc, flops in rows:
        parts = module.split(".") if module else []
        chain = [""] + [".".join(parts[:i + 1]) for i in range(len(parts))]
        for name in dict.fromkeys(chain):
            e = entry(name)
            e[f"{phase}_ns"] += dur or 0
            e["nodes"] += count
            e["alloc_bytes"] += alloc or 0
            e["flops"] += flops or 0
    for module, nbytes in saved.items():
        parts = module.split(".") if module else []
        for name in dict.fromkeys([""] + [".".join(parts[:i + 1]) for i in range(len(parts))]):
            entry(name)["saved_activation_bytes"] += nbytes
    return sorted(agg.values(), key=lambda e: e["module"])


def run_report(run: Run, step: int | None = None, rank: int | None = None) -> dict[str, Any]:
    files = run.files()
    if step is not None or rank is not None:
        files = [run.file(step, rank)]
    steps = []
    for f in files:
        with StepReader(f.path) as r:
            steps.append(step_summary(r))
    report = {"schema_version": REPORT_SCHEMA_VERSION, "run": run.name, "path": str(run.path), "steps": steps}
    if len(run.ranks()) > 1:
        from gprof.distributed.crossrank import cross_rank_report

        report["cross_rank"] = cross_rank_report(run, step=step)
    return report


# ------------------------------------------------------------------------------------ text
def _bar(frac: float, width: int = 20) -> str:
    n = round(max(0.0, min(1.0, frac)) * width)
    return "#" * n + "." * (width - n)


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
    extra = format_analyses(s)
    if extra:
        lines.append("")
        lines.extend(extra)
    return "\n".join(lines)


def format_analyses(s: dict[str, Any]) -> list[str]:
    """Text for the analysis results stored with the step (each analysis owns its formatter)."""
    from gprof.analyses import format_results

    return format_results(s)


def format_report(report: dict[str, Any]) -> str:
    head = f"torch-gprof report: run {report['run']} ({report['path']})"
    parts = [head] + [format_step(s) for s in report["steps"]]
    if "cross_rank" in report:
        from gprof.distributed.crossrank import format_cross_rank

        parts.append("\n".join(format_cross_rank(report["cross_rank"])))
    return "\n\n".join(parts)


def print_run_report(path: str | os.PathLike[str], out: IO[str], step: int | None = None) -> None:
    run = open_run(path)
    if step is None:
        steps = run.steps()
        step = steps[-1] if steps else None
    out.write(format_report(run_report(run, step=step)) + "\n")


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False)
