"""The overview: where one step's time goes (phase, op class, module), how the run's steps trend,
and the findings ranked by saving. Built from tables views cache anyway (the (module, phase) rows,
the op stats, the module table), so on a million-node step it costs a few thousand rows."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gprof.store.runs import StepFile
from gprof.store.step_file import StepReader, StoreError

#: op classes by name, for time per class without torch (the analyses' own classifier needs it)
_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matmul / conv / attention", ("mm", "bmm", "addmm", "baddbmm", "matmul", "linear", "conv", "convolution",
                                   "scaled_dot_product", "flash_attention", "efficient_attention")),
    ("normalisation / softmax / loss", ("norm", "softmax", "loss", "mean", "sum", "var", "amax", "max", "min")),
    ("copies / layout", ("clone", "copy", "_to_copy", "contiguous", "cat", "stack", "index", "gather", "scatter",
                         "embedding", "pad", "select_backward", "slice_backward")),
    ("views (no kernel)", ("view", "transpose", "permute", "expand", "reshape", "unsqueeze", "squeeze", "select",
                           "slice", "split", "t", "alias", "detach", "unbind", "as_strided", "unflatten")),
    ("random", ("bernoulli", "dropout", "rand", "normal", "uniform")),
)


def op_class(op: str) -> str:
    """A coarse class of an op name for the time split: collectives and optimizer foreach/fused ops by
    namespace or prefix, the rest by name, pointwise otherwise."""
    ns, _, rest = op.partition(".")
    name = rest.split(".")[0] if rest else ns
    if "c10d" in ns or ns == "_dtensor":
        return "communication"
    if name.startswith(("_foreach_", "_fused_")):
        return "optimizer (foreach / fused)"
    base = name.rstrip("_")
    for label, names in _CLASSES:
        if base in names or any(base.startswith(n + "_") or base.endswith("_" + n) for n in names if len(n) > 2):
            return label
    return "pointwise / other"


def _split(pairs: Sequence[tuple[str, int, int]], total: int) -> list[dict[str, Any]]:
    acc: dict[str, list[int]] = {}
    for label, ns, count in pairs:
        a = acc.setdefault(label, [0, 0])
        a[0] += ns or 0
        a[1] += count or 0
    return [{"name": k, "time_ns": v[0], "nodes": v[1], "share": round(v[0] / total, 6) if total else 0.0}
            for k, v in sorted(acc.items(), key=lambda kv: -kv[1][0])]


def time_split(phase_rows: Sequence[tuple], op_stats: Sequence[tuple]) -> dict[str, Any]:
    """Op time by phase (from ``module_phase_rows``) and by op class (from ``op_stat_rows``)."""
    total = sum(r[3] or 0 for r in phase_rows)
    return {"time_ns": total,
            "by_phase": _split([(r[1], r[3], r[2]) for r in phase_rows], total),
            "by_op_class": _split([(op_class(r[2]), r[4], r[3]) for r in op_stats], total)}


def top_modules(modules: Sequence[dict[str, Any]], types: dict[str, str], top: int = 8) -> list[dict[str, Any]]:
    """The heaviest modules by inclusive time; a module whose only heavy child takes all its time is
    left out for that child (it adds nothing)."""
    def total(e: dict[str, Any]) -> int:
        return sum(e.get(f"{p}_ns", 0) for p in ("forward", "backward", "optimizer", "other", "recompute"))

    by_total: dict[int, list[str]] = {}
    for e in modules:
        by_total.setdefault(total(e), []).append(e["module"])
    rows = []
    for e in modules:
        t = total(e)
        if e["module"] == "" or any(m.startswith(e["module"] + ".") for m in by_total[t]):
            continue
        rows.append({"module": e["module"], "type": types.get(e["module"], ""), "time_ns": t,
                     "forward_ns": e["forward_ns"], "backward_ns": e["backward_ns"], "alloc_bytes": e["alloc_bytes"],
                     "nodes": e["nodes"]})
    return sorted(rows, key=lambda r: (-r["time_ns"], r["module"]))[:top]


def step_trend(files: Sequence[StepFile], last: int = 50) -> list[dict[str, Any]]:
    """Per step of one rank (the last ``last``): wall time, op-time proxy, peak memory and node count,
    from each file's meta alone (no node is read). An unreadable file is listed with its error."""
    out: list[dict[str, Any]] = []
    for f in list(files)[-last:]:
        try:
            with StepReader(f.path) as r:
                out.append({"step": f.step, "wall_ns": r.meta.wall_ns, "peak_memory_bytes": r.memory.peak_bytes,
                            "nodes": r.meta.node_count, "complete": r.meta.complete})
        except StoreError as e:
            out.append({"step": f.step, "error": str(e)})
    return out
