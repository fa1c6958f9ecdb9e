"""Graph-break and device-stall hazards found in the eager op stream.

What Dynamo cannot trace without a break, seen from the ops it would have had to trace:

- ``data_dependent``: an op whose Python-visible result depends on tensor data
  (``aten._local_scalar_dense`` from ``.item()``, ``int(t)``, ``if t:``), tag ``data_dependent_output``;
- ``dynamic_shape``: an op whose output shape depends on data (``nonzero``, boolean-mask indexing,
  ``unique``, ...), tag ``dynamic_output_shape``; integer indexing carries the same tag but has a
  static shape, so ``index`` counts only with a boolean index;
- ``sync``: a host-device copy or scalar read of an accelerator tensor: the host waits for the device;
- ``python_random``: random numbers drawn on the host and read back into Python (the data-dependent
  read of a freshly drawn tensor), which Dynamo cannot keep inside a graph.

Each hazard is ranked by how much fusible work it splits: the smaller of the eager time of fusible
ops before and after it in its phase, since a break at the edge of a step costs little and one in
the middle halves every fusion opportunity.
"""
from __future__ import annotations

from typing import Any

from gprof.analyses.opclass import EXTERN, RANDOM, VIEW, classify, node_class
from gprof.graph.formatting import fmt_ns
from gprof.graph.model import Node, StepGraph

#: what compiling a module covers; the optimizer's own ``.item()`` on step counts is handled by
#: torch.compile's optimizer support and is not the user's hazard
COMPILED_PHASES = ("forward", "backward")
DATA_DEPENDENT, DYNAMIC_SHAPE, SYNC, PYTHON_RANDOM = "data_dependent", "dynamic_shape", "sync", "python_random"

_WHAT = {
    DATA_DEPENDENT: "reads a tensor value into Python (.item(), int(t), if t:): Dynamo breaks the graph here",
    DYNAMIC_SHAPE: "output shape depends on data: Dynamo breaks the graph unless "
                   "torch._dynamo.config.capture_dynamic_output_shape_ops is set",
    SYNC: "copies between host and device: the host waits for the device to drain",
    PYTHON_RANDOM: "random numbers are drawn and read back into Python: the value steers Python code, "
                   "so the graph breaks and replays differ",
}


def _is_accelerator(device: str) -> bool:
    return not device.startswith("cpu") and device != "meta"


def hazard_kind(node: Node) -> str | None:
    """The hazard a single node is, if any (``python_random`` needs the graph; see :func:`find`)."""
    info = classify(node.op)
    name = node.op_short
    if "data_dependent_output" in info.tags or name in ("_local_scalar_dense", "item", "is_nonzero", "equal"):
        if any(_is_accelerator(t.device) for t in node.inputs):
            return SYNC
        return DATA_DEPENDENT
    if "dynamic_output_shape" in info.tags:
        if name in ("index", "index_put", "index_put_", "_index_put_impl_") and not any(
                t.dtype == "bool" for t in node.inputs[1:]):
            return None
        return DYNAMIC_SHAPE
    devs_in = {t.device for t in node.inputs}
    devs_out = {t.device for t in node.outputs}
    if name in ("_to_copy", "copy_", "to") and devs_in and devs_out and devs_in != devs_out \
            and any(_is_accelerator(d) for d in devs_in | devs_out):
        return SYNC
    return None


def _fusible(node: Node) -> bool:
    return node_class(node) not in (VIEW, EXTERN) and hazard_kind(node) is None


def find(graph: StepGraph) -> list[dict[str, Any]]:
    """Every hazard of the step, worst first."""
    producers = graph.producers()
    by_idx = {n.idx: n for n in graph.nodes}
    phase_total: dict[str, int] = {}
    before_ns: dict[int, int] = {}
    for n in graph.nodes:
        t = phase_total.get(n.phase, 0)
        before_ns[n.idx] = t
        if _fusible(n):
            phase_total[n.phase] = t + n.dur_ns
    out: list[dict[str, Any]] = []
    for n in graph.nodes:
        if n.phase not in COMPILED_PHASES:
            continue
        kind = hazard_kind(n)
        if kind is None:
            continue
        if kind == DATA_DEPENDENT and any(
                classify(by_idx[p].op).cls == RANDOM for p in producers.get(n.idx, ()) if p in by_idx):
            kind = PYTHON_RANDOM
        before = before_ns[n.idx]
        after = phase_total.get(n.phase, 0) - before
        out.append({
            "kind": kind, "node": n.idx, "key": n.key, "op": n.op, "phase": n.phase, "module": n.module,
            "source": n.source, "what": _WHAT[kind],
            "fusible_ns_before": before, "fusible_ns_after": after, "split_ns": min(before, after),
        })
    out.sort(key=lambda h: (-h["split_ns"], h["node"]))
    for rank, h in enumerate(out, 1):
        h["rank"] = rank
    return out


def analyse(graph: StepGraph) -> list[dict[str, Any]]:
    return find(graph)


def format_text(step: dict[str, Any]) -> list[str]:
    hs = step["hazards"]
    if not hs:
        return ["   hazards: none (nothing in this step would break a torch.compile graph)"]
    lines = [f"   hazards ({len(hs)}), worst first: kind, op, module, source, fusible work split"]
    for h in hs[:15]:
        mod = "-" if h["module"] is None else (h["module"] or "(root)")
        lines.append(f"     {h['rank']:>2}. {h['kind']:<14} {h['op']:<32} {mod:<24} {h['source'] or '?'}"
                     f"  splits {fmt_ns(h['split_ns'])}")
    if len(hs) > 15:
        lines.append(f"     ... {len(hs) - 15} more (see --json)")
    return lines
