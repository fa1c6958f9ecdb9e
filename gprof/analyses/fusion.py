"""Fusion analysis: the kernels Inductor would generate for a step, and what eager loses without them.

``predict`` splits the step into the graphs Dynamo would compile (a graph-break hazard ends one), groups
each phase with the target's rules (:mod:`gprof.analyses.fusion_grouping`, which lists them) and moves
work across AOTAutograd's forward/backward cut (:mod:`gprof.analyses.aot_partition`).

An *unfused chain* is a predicted kernel that eager runs as two or more kernels. Its saving is a
roofline estimate: launches saved times the launch cost, plus the intermediate bytes no longer
written and read back over the memory bandwidth, capped at the chain's measured eager time.
"""
from __future__ import annotations

from typing import Any

from gprof.analyses import hazards as hz
from gprof.analyses.aot_partition import graph_break_outputs, partition
from gprof.analyses.fusion_grouping import predict_phase
from gprof.analyses.fusion_rules import FusionRules, Kernel, consumers_of, role, through_free
from gprof.analyses.gpu_specs import GpuSpec, gpu_spec
from gprof.analyses.roofline import Roofline, roofline_for
from gprof.analyses.triton_rules import TritonRules
from gprof.graph.formatting import fmt_bytes, fmt_ns
from gprof.graph.model import Node, StepGraph

FUSION_PHASES = ("forward", "backward", "optimizer")
MAX_CHAINS_STORED = 500


def _segments(graph: StepGraph) -> tuple[dict[int, int], set[int]]:
    """Which Dynamo graph each node would land in: a hazard in the forward ends one graph, and the
    backward of each forward graph is compiled apart, so a backward node follows its forward node.
    Also returns the backward nodes of hazards: they run eagerly, between graphs."""
    seg: dict[int, int] = {}
    hazards: set[int] = set()
    fwd_seg: dict[int, int] = {}
    current = 0
    for n in graph.nodes:
        if n.phase == "forward":
            fwd_seg[n.idx] = current
            seg[n.idx] = current
            if hz.hazard_kind(n) is not None:
                current += 1
                hazards.add(n.idx)
    prev = 0
    eager = set()
    for n in graph.nodes:
        if n.phase == "backward":
            prev = fwd_seg.get(n.fwd, prev) if n.fwd is not None else prev
            seg[n.idx] = prev
            if n.fwd in hazards:
                eager.add(n.idx)
    return seg, eager


def step_device(graph: StepGraph) -> str:
    """The device the step ran on: its first output tensor's."""
    return next((t.device for n in graph.nodes for t in n.outputs), "cpu")


def rules_for(target: str | None, graph: StepGraph, gpu: str | GpuSpec | None = None) -> FusionRules:
    """The rules of a fusion target: ``cpu`` (Inductor's C++ backend) or ``cuda`` (Triton, for the GPU
    ``gpu`` names, see :mod:`gprof.analyses.gpu_specs`); ``None`` is the device the step ran on."""
    target = target or ("cuda" if step_device(graph).startswith("cuda") else "cpu")
    if target == "cpu":
        return FusionRules()
    if target == "cuda":
        return TritonRules(gpu_spec(gpu))
    raise ValueError(f"unknown fusion target {target!r}: cpu or cuda")


#: a checkpointed forward re-run in backward is, compiled, part of the backward graph AOTAutograd
#: hands Inductor, so it fuses with the backward ops around it (in run order), not with itself
_COMPILED_WITH = {"recompute": "backward"}


def predict(graph: StepGraph, target: str | None = None, gpu: str | GpuSpec | None = None) -> dict[str, list[Kernel]]:
    """Predicted kernels per phase for ``target`` (see ``rules_for``; ``partition`` says what moves
    between forward and backward)."""
    rules = rules_for(target, graph, gpu)
    producers = graph.producers()
    segments, eager = _segments(graph)
    by_phase: dict[str, list[Node]] = {p: [] for p in FUSION_PHASES}
    for n in graph.nodes:
        phase = _COMPILED_WITH.get(n.phase, n.phase)
        if phase in by_phase:
            by_phase[phase].append(n)
    roles = {n.idx: role(n) for ns in by_phase.values() for n in ns}
    uses = {i: len(cs) for i, cs in consumers_of(
        through_free([n for n in graph.nodes if n.idx in roles], roles, producers)).items()}
    kernels = {p: predict_phase(ns, producers, roles, segments, eager, rules, uses) for p, ns in by_phase.items()}
    partition(graph, kernels, producers, roles, segments)
    graph_break_outputs(graph, kernels, producers, roles, segments)
    return kernels


def _chain(k: Kernel, by_idx: dict[int, Node], out_edges: dict[int, list[tuple[int, int, int]]],
           roof: Roofline | GpuSpec) -> dict[str, Any]:
    members = set(k.nodes)
    inter = 0
    for i in k.nodes:
        written: dict[int, tuple[int, bool]] = {}
        for dst, storage, nbytes in out_edges.get(i, ()):
            nb, inside = written.get(storage, (nbytes, True))
            written[storage] = (nb, inside and dst in members)
        inter += sum(2 * nb for nb, inside in written.values() if inside)
    nodes = [by_idx[i] for i in k.nodes]
    modules: dict[str, int] = {}
    for n in nodes:
        m = n.module if n.module is not None else ""
        modules[m] = modules.get(m, 0) + 1
    eager_ns = sum(n.dur_ns for n in nodes)
    launches = len(nodes) - 1
    est = min(eager_ns, round(launches * roof.launch_ns + roof.bytes_ns(inter)))
    return {
        "phase": k.phase, "nodes": k.nodes, "keys": [n.key for n in nodes],
        "ops": list(dict.fromkeys(n.op_short for n in nodes)),
        "module": max(modules, key=lambda m: (modules[m], -len(m))), "modules": sorted(modules),
        "eager_kernels": len(nodes), "fused_kernels": 1, "launches_saved": launches,
        "intermediate_bytes": inter, "eager_ns": eager_ns, "est_time_saved_ns": est,
        "source": next((n.source for n in nodes if n.source), None),
    }


def analyse(graph: StepGraph, target: str | None = None, gpu: str | GpuSpec | None = None) -> dict[str, Any]:
    """Kernels and unfused chains for ``target`` (default: the step's device). The saving is priced with
    the measured roofline of the step's device when the target is that device, else with the datasheet
    figures of ``gpu`` (:mod:`gprof.analyses.gpu_specs`)."""
    rules = rules_for(target, graph, gpu)
    kernels = predict(graph, rules.target, gpu)
    device = step_device(graph)
    roof: Roofline | GpuSpec = (roofline_for(device) if device.split(":")[0] == rules.target
                                else getattr(rules, "gpu", None) or roofline_for("cpu"))
    by_idx = {n.idx: n for n in graph.nodes}
    out_edges: dict[int, list[tuple[int, int, int]]] = {}
    for e in graph.edges:
        out_edges.setdefault(e.src, []).append((e.dst, e.storage, e.nbytes))
    chains = [_chain(k, by_idx, out_edges, roof) for ks in kernels.values() for k in ks
              if k.generated and len(k.nodes) > 1]
    chains.sort(key=lambda c: -c["est_time_saved_ns"])
    for i, c in enumerate(chains):
        c["id"] = i
    return {
        "predicted_kernels": {p: len(ks) for p, ks in kernels.items()},
        "generated_kernels": {p: sum(k.generated for k in ks) for p, ks in kernels.items()},
        "extern_kernels": {p: sum(not k.generated for k in ks) for p, ks in kernels.items()},
        "eager_kernels": {p: sum(len(k.nodes) for k in ks) for p, ks in kernels.items()},
        "chains_total": len(chains),
        "est_time_saved_ns": sum(c["est_time_saved_ns"] for c in chains),
        "chains": chains[:MAX_CHAINS_STORED],
        "target": rules.target,
        "roofline": {"device": roof.device if isinstance(roof, Roofline) else f"cuda ({roof.name}, datasheet)",
                     "bandwidth_bps": roof.bandwidth_bps, "launch_ns": roof.launch_ns},
    }


#: how the report names a fusion target (a step stored before targets existed has none: plain "Inductor")
_BACKENDS = {"cpu": "Inductor C++, --target cpu", "cuda": "Inductor Triton, --target cuda"}


def format_text(step: dict[str, Any]) -> list[str]:
    """The text report's fusion section, from the stored result alone (a reader re-prints it without the graph)."""
    f = step["fusion"]
    backend = _BACKENDS.get(f.get("target", ""), "Inductor")
    lines = [f"   fusion (what torch.compile would generate: {backend})      eager -> predicted kernels"]
    for p, n in f["predicted_kernels"].items():
        if f["eager_kernels"].get(p):
            lines.append(f"     {p:<10} {f['eager_kernels'][p]:>6} -> {n:<5} ({f['generated_kernels'][p]} generated, "
                         f"{f['extern_kernels'][p]} extern)")
    lines.append(f"   unfused chains: {f['chains_total']}, est. saving {fmt_ns(f['est_time_saved_ns'])} per step "
                 f"(roofline {f['roofline'].get('device', '')}: {f['roofline']['bandwidth_bps'] / 1e9:.1f} GB/s, launch "
                 f"{fmt_ns(round(f['roofline']['launch_ns']))})")
    for c in f["chains"][:8]:
        ops = "+".join(c["ops"][:6]) + ("+..." if len(c["ops"]) > 6 else "")
        lines.append(f"     #{c['id']:<3} {c['phase']:<9} {c['module'] or '(root)':<28} {c['eager_kernels']:>2}->1  "
                     f"{fmt_bytes(c['intermediate_bytes']):>9}  saves ~{fmt_ns(c['est_time_saved_ns'])}  {ops}")
    return lines
