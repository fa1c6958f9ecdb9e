"""Optimizer advice: the optimizer phase named as the optimizer, and what ``fused=True``,
``foreach=True`` or compiling ``opt.step`` would save.

Torch-free: it reads op names and durations of the step's ``optimizer`` nodes and the optimizer
classes the capture saw (``meta.extra["optimizers"]``). The saving is the ops a better variant no
longer dispatches times what one dispatched op costs beyond its arithmetic, measured with
benchmarks/optimizer_variants.py (numbers in benchmarks/RESULTS.md), and never more than the phase
took. Durations recorded under the profiler include its own per-op cost, so the phase time is an
upper bound, not the estimate.
"""
from __future__ import annotations

from typing import Any

from gprof.graph.formatting import fmt_ns
from gprof.graph.model import StepGraph

#: ops a fused step dispatches per optimizer class (torch 2.13, CPU; steps counter + the fused kernel)
FUSED_OPS = {"Adam": 2, "AdamW": 2, "SGD": 1, "Adagrad": 2}
#: ns one dispatched optimizer op costs beyond its arithmetic, by device type: (t_loop - t_fused) /
#: (ops_loop - ops_fused) for Adam/AdamW on this project's 2-core CPU machine; the CUDA figure is a
#: kernel launch (an assumption, not measured here)
PER_OP_NS = {"cpu": 1_800, "cuda": 5_000}


def _variant(ops: list[str]) -> str:
    if any("_fused_" in op for op in ops):
        return "fused"
    if any("_foreach_" in op for op in ops):
        return "foreach"
    return "for-loop"


def _advice(cls: str | None, variant: str, n_ops: int, per_op: int, phase_ns: int) -> list[dict[str, Any]]:
    """Better variants than the one the step ran, best first, each with its estimated saving."""
    ctor = f"torch.optim.{cls}(model.parameters(), ..., " if cls else "your optimizer(..., "
    out = []

    def add(kind: str, ops_after: int, code: str) -> None:
        saved = min(phase_ns, max(0, n_ops - ops_after) * per_op)
        if saved > 0:
            out.append({"kind": kind, "ops_after": ops_after, "est_time_saved_ns": saved, "code": code})

    if variant != "fused" and cls in FUSED_OPS:
        add("fused", FUSED_OPS[cls], ctor + "fused=True)")
    if variant == "for-loop":
        # a foreach step still dispatches a few ops per parameter (CPU bias corrections): a quarter
        # of the for-loop ops, as measured for Adam/AdamW
        add("foreach", n_ops // 4, ctor + "foreach=True)")
    if variant != "fused":
        add("compile", FUSED_OPS.get(cls or "", 2), "@torch.compile(fullgraph=False)\ndef opt_step():\n    opt.step()\n\n"
            "# in the loop, instead of opt.step():\nopt_step()")
    return sorted(out, key=lambda a: -a["est_time_saved_ns"])


def analyse(graph: StepGraph) -> list[dict[str, Any]]:
    """One entry per step with optimizer ops: its name (``Adam.step (foreach)``), op count, time,
    the modules its parameters are in, and advice."""
    nodes = [n for n in graph.nodes if n.phase == "optimizer"]
    if not nodes:
        return []
    classes = graph.meta.extra.get("optimizers") or []
    cls = classes[0] if len(classes) == 1 else None
    ops = [n.op for n in nodes]
    variant = _variant(ops)
    phase_ns = sum(n.dur_ns for n in nodes)
    modules = {m for n in nodes for m in ([s[0] for s in n.attrs.get("param_shares", ())] or [n.module])
               if m is not None}
    device = (graph.meta.devices[0] if graph.meta.devices else "cpu").split(":")[0]
    per_op = PER_OP_NS.get(device, PER_OP_NS["cpu"])
    name = f"{cls or '/'.join(classes) or 'optimizer'}.step ({variant})"
    return [{"name": name, "optimizer": cls, "variant": variant, "ops": len(nodes), "time_ns": phase_ns,
             "modules": sorted(modules), "advice": _advice(cls, variant, len(nodes), per_op, phase_ns)}]


def format_text(step: dict[str, Any]) -> list[str]:
    lines = []
    for o in step.get("optimizer_advice") or []:
        lines.append(f"   optimizer: {o['name']}, {o['ops']} ops, {fmt_ns(o['time_ns'])} recorded, "
                     f"{len(o['modules'])} module(s)" + (", one of (savings do not add up):" if len(o["advice"]) > 1 else ""))
        for a in o["advice"]:
            lines.append(f"     {a['kind']}: saves ~{fmt_ns(a['est_time_saved_ns'])}/step ({o['ops']} -> "
                         f"{a['ops_after']} ops)")
            lines.extend("          " + line for line in a["code"].splitlines())
    return lines
