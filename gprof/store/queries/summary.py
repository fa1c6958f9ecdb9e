"""Step summaries: the report's per-step object and the tab's headline strip."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gprof.graph.model import PHASES
from gprof.store.queries.modules import module_table
from gprof.store.queries.ops import module_phase_rows, top_ops
from gprof.store.step_file import StepReader


def _frac(num: int, den: int) -> float:
    return round(num / den, 6) if den else 1.0


def step_summary(r: StepReader, top: int = 15) -> dict[str, Any]:
    """The report's JSON object for one (step, rank) (schema: docs/report-schema.md)."""
    m = r.meta
    phases = {p: 0 for p in PHASES if p != "recompute"}  # a step without checkpointing reads as before
    phases.update(dict(r.sql("SELECT phase, COUNT(*) FROM nodes GROUP BY phase")))
    fb_total, fb_mod = r.sql(
        "SELECT COUNT(*), COUNT(module) FROM nodes WHERE phase IN ('forward', 'backward')")[0]
    bw_total, bw_linked = r.sql(
        "SELECT COUNT(*), SUM(fwd IS NOT NULL OR param IS NOT NULL) FROM nodes WHERE phase = 'backward'")[0]
    rc_total, rc_linked = r.sql("SELECT COUNT(*), SUM(fwd IS NOT NULL) FROM nodes WHERE phase = 'recompute'")[0]
    time_ns, flops = r.sql("SELECT COALESCE(SUM(dur_ns), 0), COALESCE(SUM(flops), 0) FROM nodes")[0]
    device_ns = r.sql("SELECT SUM(device_ns) FROM nodes")[0][0]
    peak = r.node(r.memory.peak_node) if r.memory.peak_node is not None else None
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
        "top_ops": top_ops(r, top),
        "modules": module_table(r),
    }
    if rc_total:
        out["recompute_linked"] = _frac(rc_linked or 0, rc_total)
        out["recomputed_activations"] = r.memory.recomputed_activations
    if m.extra.get("kineto_trace"):
        out["kineto_trace"] = m.extra["kineto_trace"]
    for name, value in r.analyses().items():
        out.setdefault(name, value)
    return out


def headline(r: StepReader, phase_rows: Sequence[tuple] | None = None) -> dict[str, Any]:
    """What the tab's summary strip shows, from the (module, phase) rows (:func:`module_phase_rows`,
    which a caller that has them cached passes in) instead of a scan of the nodes."""
    m, mem = r.meta, r.memory
    phases: dict[str, int] = {}
    time_ns = flops = 0
    device_ns = None
    for _, phase, count, dur, dev, _, _, fl in module_phase_rows(r) if phase_rows is None else phase_rows:
        phases[phase] = phases.get(phase, 0) + count
        time_ns += dur or 0
        flops += fl or 0
        if dev is not None:
            device_ns = (device_ns or 0) + dev
    return {"step": m.step, "rank": m.rank, "world_size": m.world_size, "complete": m.complete, "error": m.error,
            "nodes": sum(phases.values()), "phases": phases, "time_ns": time_ns, "device_time_ns": device_ns,
            "wall_ns": m.wall_ns, "flops": flops, "peak_memory_bytes": mem.peak_bytes, "peak_node": mem.peak_node,
            "memory_by_category": mem.by_category, "aggregate_only": m.aggregate_only,
            "kineto_trace": m.extra.get("kineto_trace"), "torch_version": m.torch_version}
