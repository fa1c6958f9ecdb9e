"""The node inspector: one node's page, read through the store's indexes."""
from __future__ import annotations

from typing import Any

from gprof.graph.model import Node
from gprof.store.queries import regions_of
from gprof.store.queries.wiring import wired_neighbours
from gprof_tb.stepdata import StepData, Target

_NEIGHBOUR_LIMIT = 50


def _brief(n: Node | None) -> dict[str, Any] | None:
    if n is None:
        return None
    return {"idx": n.idx, "key": n.key, "op": n.op, "phase": n.phase, "module": n.module, "dur_ns": n.dur_ns}


def node_detail(data: StepData, idx: int, target: Target = None) -> dict[str, Any] | None:
    """Everything the inspector shows for one node (its chains and regions as predicted for ``target``),
    or None when the step has no such node."""
    r = data.reader
    n = r.node(idx)
    if n is None:
        return None
    partner_fwd = r.node(n.fwd) if n.fwd is not None else None
    partners_bwd = [r.node(i) for i in data.backward_partners(idx, _NEIGHBOUR_LIMIT)]
    wired = wired_neighbours(r, idx)  # views wired to the op that made them
    producers, consumers = ([r.node(i) for i in ids[:_NEIGHBOUR_LIMIT]] for ids in wired)
    view = data.analyses_view(target)
    marks = data.node_items(target).get(idx, {})  # all of them; the graph marks fewer
    numbers = {"chains": marks.get("chains", []), "hazards": marks.get("hazards", []),
               "regions": sorted(set(marks.get("regions", [])) | set(regions_of(view, n.module)))}
    related = {kind: [{"number": i, **view[name]["items"][i]} for i in numbers[kind]]
               for name, kind in (("fusion", "chains"), ("hazards", "hazards"), ("compile_suggestions", "regions"))}
    return {
        "idx": n.idx, "key": n.key, "op": n.op, "op_short": n.op_short, "phase": n.phase, "module": n.module,
        "module_type": data.module_types().get(n.module or "", None) if n.module is not None else None,
        "inputs": [{"shape": list(t.shape), "dtype": t.dtype, "device": t.device, "nbytes": t.nbytes}
                   for t in n.inputs],
        "outputs": [{"shape": list(t.shape), "dtype": t.dtype, "device": t.device, "nbytes": t.nbytes}
                    for t in n.outputs],
        "dur_ns": n.dur_ns, "device_ns": n.device_ns, "start_ns": n.start_ns, "alloc_bytes": n.alloc_bytes,
        "freed_bytes": n.freed_bytes, "live_bytes": n.live_bytes, "flops": n.flops, "source": n.source,
        "thread": n.thread, "param": n.param, "grad_fn": n.grad_fn, "attrs": n.attrs,
        "forward_partner": _brief(partner_fwd), "backward_partners": [_brief(p) for p in partners_bwd],
        "producers": [_brief(p) for p in producers], "consumers": [_brief(p) for p in consumers],
        "fusion_chains": related["chains"], "hazards": related["hazards"], "compile_regions": related["regions"],
    }
