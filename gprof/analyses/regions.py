"""Compile-region suggestions: the smallest set of module subtrees that covers most of the
predicted fusion savings without containing a graph-break hazard.

A module's saving is the sum of the chains (forward and backward: compiling a module compiles its
backward too) whose nodes all belong to that module's subtree. Candidates are the *maximal*
hazard-free subtrees: an ancestor that holds a hazard would break, and a smaller descendant would
miss savings its siblings' glue holds. They are taken best first until ``COVERAGE`` of the
coverable saving is reached. Repeated blocks (``layers.0``, ``layers.1``, ... of one type) come out
as one suggestion with a loop snippet, ranked by their summed saving.
"""
from __future__ import annotations

import re
from typing import Any

from gprof.analyses.hazards import COMPILED_PHASES
from gprof.graph.formatting import fmt_ns
from gprof.graph.model import StepGraph

#: stop adding regions once they cover this share of the coverable saving
COVERAGE = 0.9
_INDEX = re.compile(r"^\d+$")
#: module types whose forward is never called: compiling them compiles nothing
CONTAINERS = {"ModuleList", "ModuleDict", "ParameterList", "ParameterDict"}


def _ancestors(fqn: str) -> list[str]:
    """``a.b.c`` -> ``['', 'a', 'a.b', 'a.b.c']``."""
    parts = fqn.split(".") if fqn else []
    return [""] + [".".join(parts[:i + 1]) for i in range(len(parts))]


def _inside(module: str, root: str) -> bool:
    return root == "" or module == root or module.startswith(root + ".")


def _common(modules: list[str]) -> str:
    """Deepest module that contains all of ``modules``."""
    common = _ancestors(modules[0])
    for m in modules[1:]:
        anc = set(_ancestors(m))
        common = [a for a in common if a in anc]
    return common[-1]


def accessor(fqn: str, root: str = "model") -> str:
    """``encoder.layers.0`` -> ``model.encoder.layers[0]``."""
    out = root
    for part in fqn.split(".") if fqn else []:
        out += f"[{part}]" if _INDEX.match(part) else f".{part}"
    return out


def suggest(chains: list[dict[str, Any]], hazards: list[dict[str, Any]],
            module_types: dict[str, str] | None = None, builtin: set[str] | None = None) -> list[dict[str, Any]]:
    """Ranked suggestions from a step's fusion chains and hazards (plain JSON in, JSON out).
    ``builtin``: modules whose class comes with PyTorch, which get ``torch.compile(module)`` (see
    :func:`_snippet`)."""
    module_types = module_types or {}
    builtin = builtin or set()
    chains = [c for c in chains if c["phase"] in COMPILED_PHASES and c["est_time_saved_ns"] > 0]
    hazardous: set[str] = set()
    for h in hazards:
        hazardous.update(_ancestors(h["module"] or ""))
    # each chain belongs to the smallest subtree holding all its nodes
    owner = {c["id"]: _common(c["modules"]) for c in chains}
    # the maximal hazard-free subtree holding each chain (containers are never called: skip them)
    region_of: dict[int, str] = {}
    for c in chains:
        free = [a for a in _ancestors(owner[c["id"]]) if a not in hazardous and module_types.get(a) not in CONTAINERS]
        if free:
            region_of[c["id"]] = free[0]
    regions: dict[str, list[dict[str, Any]]] = {}
    for c in chains:
        r = region_of.get(c["id"])
        if r is not None:
            regions.setdefault(r, []).append(c)
    groups = _group_repeats(list(regions), module_types)
    out = []
    for members in groups:
        cs = [c for m in members for c in regions[m]]
        saved = sum(c["est_time_saved_ns"] for c in cs)
        parent = members[0].rpartition(".")[0] if members[0] else None
        avoided = [h for h in hazards if parent is not None and _inside(h["module"] or "", parent)
                   and not any(_inside(h["module"] or "", m) for m in members)]
        out.append({
            "module": members[0] if len(members) == 1 else f"{parent}.*" if parent else "*",
            "modules": members, "type": module_types.get(members[0]),
            "snippet": _snippet(members, members[0] in builtin),
            "est_time_saved_ns": saved, "chains": [c["id"] for c in cs],
            "hazards_avoided": [{"kind": h["kind"], "op": h["op"], "module": h["module"], "source": h["source"]}
                                for h in avoided],
        })
    out.sort(key=lambda s: -s["est_time_saved_ns"])
    total = sum(s["est_time_saved_ns"] for s in out)
    picked, covered = [], 0
    for s in out:
        if total and covered >= COVERAGE * total:
            break
        picked.append(s)
        covered += s["est_time_saved_ns"]
    for rank, s in enumerate(picked, 1):
        s["rank"] = rank
        s["share_of_saving"] = round(s["est_time_saved_ns"] / total, 4) if total else 0.0
    return picked


def _group_repeats(modules: list[str], types: dict[str, str]) -> list[list[str]]:
    """Siblings ``x.0``, ``x.1`` of the same type become one group (compiled by one loop)."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    order: list[tuple[str, str | None]] = []
    for m in sorted(modules, key=lambda m: [int(p) if p.isdigit() else p for p in m.split(".")]):
        parent, _, last = m.rpartition(".")
        key = (parent, types.get(m)) if _INDEX.match(last) else (m, None)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(m)
    return [groups[k] for k in order]


def _snippet(members: list[str], builtin: bool = False) -> str:
    """In-place ``.compile()`` keeps state_dict keys; PyTorch's own module classes (``builtin``) get
    ``torch.compile(module)`` instead, on every torch. Before 2.14 in place leaves them eager
    (Dynamo skips their files). torch 2.14 does compile them in place, but by tracing their own
    ``_call_impl``, global module hooks included: under torch-gprof's hooks such a module recompiles
    with a graph break at each submodule, so the step recorded to check the suggestion is not the
    compiled code, while ``torch.compile(module)`` records as one compiled region on both
    (tests/test_compile_snippets.py checks each form on the running torch)."""
    if len(members) == 1:
        a = accessor(members[0])
        return f"{a} = torch.compile({a})" if builtin else f"{a}.compile()"
    parent = accessor(members[0].rpartition(".")[0])
    idx = [int(m.rpartition(".")[2]) for m in members]
    if idx == list(range(idx[0], idx[0] + len(idx))) and idx[0] == 0:
        if builtin:
            return f"for i, block in enumerate({parent}):\n    {parent}[i] = torch.compile(block)"
        return f"for block in {parent}:\n    block.compile()"
    if builtin:
        return f"for i in {idx}:\n    {parent}[i] = torch.compile({parent}[i])"
    return f"for i in {idx}:\n    {parent}[i].compile()"


def analyse(graph: StepGraph, target: str | None = None, gpu: str | None = None) -> list[dict[str, Any]]:
    """Needs the ``fusion`` and ``hazards`` results of the same step (run before it, for the same
    ``target``; a stored fusion result of another target is recomputed)."""
    from gprof.analyses import fusion, hazards

    f = graph.analyses.get("fusion")
    want = fusion.rules_for(target, graph, gpu).target
    if not isinstance(f, dict) or "chains" not in f or f.get("target", "cpu") != want:
        f = fusion.analyse(graph, target, gpu)
    hs = graph.analyses.get("hazards")
    if not isinstance(hs, list):
        hs = hazards.analyse(graph)
    return suggest(f["chains"], hs, {fqn: m.type for fqn, m in graph.modules.items()},
                   {fqn for fqn, m in graph.modules.items() if m.builtin})


def format_text(step: dict[str, Any]) -> list[str]:
    ss = step["compile_suggestions"]
    if not ss:
        return ["   compile suggestions: none (no unfused chain outside a hazard)"]
    lines = ["   compile suggestions (verify with: torch-gprof verify SCRIPT)"]
    for s in ss:
        avoid = f"; avoids {len(s['hazards_avoided'])} hazard(s) in the parent" if s["hazards_avoided"] else ""
        lines.append(f"     {s['rank']}. {s['module'] or '(root)'}  saves ~{fmt_ns(s['est_time_saved_ns'])}/step "
                     f"({s['share_of_saving']:.0%}), {len(s['chains'])} chain(s){avoid}")
        lines.extend("          " + line for line in s["snippet"].splitlines())
    return lines
