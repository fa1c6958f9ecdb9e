"""Op statistics: the write-time (module, phase, op) aggregates and the op table in each grouping."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gprof.store.decode import decoding
from gprof.store.queries.modules import module_table
from gprof.store.step_file import StepReader, decode_tensors

GROUPS = ("op", "op_shape", "module")


def op_stat_rows(r: StepReader) -> list[tuple]:
    """(module, phase, op, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops, min_dur, max_dur)."""
    return r.sql("SELECT * FROM agg_op_stats")  # precomputed when the step was written


def op_edge_rows(r: StepReader) -> list[tuple]:
    """(src module, src phase, src op, dst module, dst phase, dst op, bytes, count): each tensor once per
    pair of op groups, however many ops of the destination group read it."""
    return r.sql("SELECT * FROM agg_op_edges")


def module_phase_rows(r: StepReader) -> list[tuple]:
    """(module, phase, count, dur_ns, device_ns, alloc_bytes, max_live_bytes, flops) per module and phase."""
    return r.sql("SELECT module, phase, SUM(count), SUM(dur_ns), SUM(device_ns), SUM(alloc_bytes), "
                 "MAX(max_live_bytes), SUM(flops) FROM agg_op_stats GROUP BY module, phase")


def module_edge_rows(r: StepReader) -> list[tuple]:
    """Dataflow merged to (src module, src phase, dst module, dst phase, bytes, count), between
    different (module, phase) pairs only, each tensor (source node, storage, bytes) counted once per
    pair; ``count`` is the number of tensors. Precomputed when the step was written."""
    return r.sql("SELECT * FROM agg_module_edges")


def top_ops(r: StepReader, top: int) -> list[dict[str, Any]]:
    """The ``top`` ops by total time: count, total, mean and FLOPs."""
    return [
        {"op": op, "count": c, "total_ns": t, "mean_ns": t // c if c else 0, "flops": f}
        for op, c, t, f in r.sql(
            "SELECT op, SUM(count), SUM(dur_ns), SUM(flops) FROM agg_op_stats GROUP BY op ORDER BY SUM(dur_ns) DESC "
            "LIMIT ?", (top,))
    ]


def input_shapes(encoded: str) -> str:
    """A stored tensor list without storage ids and byte counts, e.g. ``float32[64,256], float32[512]``."""
    return ", ".join(f"{t.dtype}[{','.join(map(str, t.shape))}]" for t in decode_tensors(encoded))


def op_table(r: StepReader, group: str, op_stats: Sequence[tuple] | None = None,
             modules: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Rows of the op table grouped by ``op``, ``op_shape`` (op + input shapes) or ``module``.

    ``op_stats`` (:func:`op_stat_rows`) and ``modules`` (``module_table``) may be passed by a caller
    that has them cached. Grouping by input shape is a Python pass over every node, since the stored
    inputs carry storage ids: seconds on a million-node step.
    """
    if group not in GROUPS:
        raise ValueError(f"op table group must be one of {', '.join(GROUPS)}; got {group!r}")
    merged: dict[tuple, list] = {}

    def add(key: tuple, count: int, dur: int | None, dev: int | None, alloc: int | None, flops: int | None,
            dmin: int | None, dmax: int | None, phase: str) -> None:
        acc = merged.get(key)
        if acc is None:
            merged[key] = [count, dur or 0, dev, alloc or 0, flops or 0, dmin or 0, dmax or 0, {phase}]
            return
        acc[0] += count
        acc[1] += dur or 0
        acc[2] = acc[2] if dev is None else (acc[2] or 0) + dev
        acc[3] += alloc or 0
        acc[4] += flops or 0
        acc[5] = min(acc[5], dmin or 0)
        acc[6] = max(acc[6], dmax or 0)
        acc[7].add(phase)

    if group in ("op", "module"):
        for module, phase, op, count, dur, dev, alloc, _, flops, dmin, dmax in (
                op_stat_rows(r) if op_stats is None else op_stats):
            add((op,) if group == "op" else (module,), count, dur, dev, alloc, flops, dmin, dmax, phase)
    else:
        with decoding(r.path, "a node's inputs"):
            for op, inputs, dur, dev, alloc, flops, phase in r.sql(
                    "SELECT op, inputs, dur_ns, device_ns, alloc_bytes, flops, phase FROM nodes"):
                add((op, input_shapes(inputs)), 1, dur, dev, alloc, flops, dur, dur, phase)
    out = []
    for key, (count, dur, dev, alloc, flops, dmin, dmax, phases) in merged.items():
        entry: dict[str, Any] = {"module" if group == "module" else "op": key[0]}
        if group == "op_shape":
            entry["input_shapes"] = key[1]
        entry.update({
            "calls": count, "host_self_ns": dur, "host_total_ns": dur, "device_self_ns": dev,
            "device_total_ns": dev, "mean_ns": dur // count if count else 0, "min_ns": dmin,
            "max_ns": dmax, "alloc_bytes": alloc, "flops": flops, "phases": ",".join(sorted(phases))})
        out.append(entry)
    if group == "module":  # inclusive (total) time: a module's own ops plus its submodules'
        incl = {e["module"]: e for e in (module_table(r) if modules is None else modules)}
        for e in out:
            m = incl.get(e["module"])
            if m is not None:
                e["host_total_ns"] = sum(m[f"{p}_ns"] for p in ("forward", "backward", "optimizer", "other"))
    return out
