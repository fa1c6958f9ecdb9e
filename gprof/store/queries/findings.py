"""The step's findings (unfused chains, graph-break hazards, compile regions, optimizer and memory
advice) in one list, ranked by estimated saving, numbered 1..N: the numbers the report prints and
the tab shows, so "finding 3" names the same thing everywhere.

Pure over the stored results (no SQL): the report calls it on its step summary, the tab on the
step's analyses. Node references stay as stored (``nodes`` indices, ``key``); the tab resolves
keys. An optimizer-phase chain is named after the optimizer ("Adam step"), not after the module of
its first parameter, whatever module the fusion analysis filed it under.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gprof.analyses.items import analysis_items, item_snippet
from gprof.graph.formatting import fmt_bytes, fmt_ns

#: unfused chains marked on graph nodes: the top few by saving, or any worth this share of the step
MARK_TOP, MARK_MIN_SHARE = 5, 0.02
_KIND_ORDER = {"hazard": 0, "compile_region": 1, "optimizer": 2, "unfused_chain": 3, "memory": 4}


def module_label(module: str | None) -> str:
    """A module as people read it: the root model and ops outside every module named as such."""
    if module is None:
        return "(outside modules)"
    return module or "(root)"


def _short(op: str) -> str:
    parts = op.split(".")
    return parts[1] if len(parts) > 1 and parts[0] in ("aten", "prims") else op


def _optimizer_name(analyses: dict[str, Any], optimizers: Sequence[str]) -> str:
    advice = analyses.get("optimizer_advice")
    if isinstance(advice, list) and advice and isinstance(advice[0], dict) and advice[0].get("name"):
        return str(advice[0]["name"])
    return f"{'/'.join(optimizers)} step" if optimizers else "optimizer step"


def _finding(kind: str, ref: Any, title: str, saving_ns: int, module: str | None, phase: str | None,
             source: str | None, nodes: list[int], key: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": f"{kind}:{ref}", "kind": kind, "title": title, "saving_ns": int(saving_ns or 0),
            "module": module, "module_label": module_label(module), "phase": phase, "source": source,
            "node": nodes[0] if nodes else None, "key": key, "nodes": nodes, **extra}


def _chains(analyses: dict[str, Any], optimizer: str) -> list[dict[str, Any]]:
    fusion = analyses.get("fusion")
    out = []
    for i, c in enumerate(analysis_items(fusion) if isinstance(fusion, dict) else []):
        ops = [_short(o) for o in c.get("ops", [])]
        opt = c.get("phase") == "optimizer"
        what = "+".join(ops[:5]) + ("+..." if len(ops) > 5 else "")
        title = (f"{optimizer}: {c.get('eager_kernels', '?')} kernels could be 1" if opt
                 else f"unfused {what}: {c.get('eager_kernels', '?')} kernels could be {c.get('fused_kernels', 1)}")
        out.append(_finding(
            "unfused_chain", c.get("id", i), title, c.get("est_time_saved_ns", 0), None if opt else c.get("module"),
            c.get("phase"), c.get("source"), [n for n in c.get("nodes", []) if isinstance(n, int)],
            (c.get("keys") or [None])[0], chain=i, optimizer=optimizer if opt else None,
            detail=f"{fmt_bytes(c.get('intermediate_bytes', 0))} of intermediates stay in memory"))
        if opt:
            out[-1]["module_label"] = optimizer
    return out


def _hazards(analyses: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, h in enumerate(analysis_items(analyses.get("hazards"))):
        node = h.get("node")
        out.append(_finding(
            "hazard", h.get("rank", i + 1), f"graph break: {h.get('kind', '?').replace('_', ' ')} at {_short(h.get('op', '?'))}",
            h.get("split_ns", 0), h.get("module"), h.get("phase"), h.get("source"),
            [node] if isinstance(node, int) else [], h.get("key"), detail=h.get("what")))
    return out


def _regions(analyses: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(analysis_items(analyses.get("compile_suggestions"))):
        module = s.get("module")
        out.append(_finding(
            "compile_region", s.get("rank", i + 1), f"compile {'the whole model' if module == '' else module}",
            s.get("est_time_saved_ns", 0), module, None, None, [], snippet=item_snippet(s),
            detail=f"{len(s.get('chains', []))} chain(s) fuse inside it", chains=s.get("chains", [])))
    return out


def _optimizer_advice(analyses: dict[str, Any]) -> list[dict[str, Any]]:
    """One finding per optimizer: its best variant, the others named in its detail. They are
    alternatives (fused, foreach, or compiling ``opt.step``), so their savings never add up."""
    out = []
    for o in analysis_items(analyses.get("optimizer_advice")):
        advice = sorted(o.get("advice", []), key=lambda a: -a.get("est_time_saved_ns", 0))
        if not advice:
            continue
        best, others = advice[0], advice[1:]
        detail = f"{o.get('ops')} ops -> {best.get('ops_after')} ops"
        if others:
            detail += "; or " + ", or ".join(f"{a.get('kind')} (~{fmt_ns(a.get('est_time_saved_ns', 0))})"
                                             for a in others) + ": alternatives, one of them"
        out.append(_finding(
            "optimizer", best.get("kind"), f"{o.get('name', 'optimizer')}: use {best.get('kind')}",
            best.get("est_time_saved_ns", 0), None, "optimizer", None, [], snippet=best.get("code"), detail=detail))
        out[-1]["module_label"] = o.get("name", "optimizer")
    return out


def _memory(memory: dict[str, Any]) -> list[dict[str, Any]]:
    saved = memory.get("saved_activations") or {}
    peak = memory.get("peak_node")
    if not saved or not memory.get("peak_bytes"):
        return []
    module, nbytes = max(saved.items(), key=lambda kv: (kv[1], kv[0]))
    return [_finding("memory", "activations", f"{fmt_bytes(nbytes)} of activations saved for backward in "
                     f"{module_label(module)}", 0, module, "forward", None, [peak] if isinstance(peak, int) else [],
                     detail=f"peak {fmt_bytes(memory['peak_bytes'])}; activation checkpointing trades it for recompute")]


def _readable(build: Callable[..., Any], *args: Any) -> Any:
    """``build(*args)``, or empty when a stored result has a shape it does not expect (a damaged file,
    another version's analysis): one unreadable analysis costs its findings, not the overview or report."""
    try:
        return build(*args)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        return []


def step_findings(analyses: dict[str, Any], memory: dict[str, Any] | None = None,
                  optimizers: Sequence[str] = (), step_ns: int = 0) -> list[dict[str, Any]]:
    """Every finding, highest estimated saving first (ties: hazards, regions, optimizer, chains,
    memory, then stored order), with ``number`` 1..N, ``share`` of ``step_ns`` and ``saving`` text."""
    if not isinstance(analyses, dict):
        analyses = {}
    found = (_readable(_hazards, analyses) + _readable(_regions, analyses) + _readable(_optimizer_advice, analyses)
             + _readable(_chains, analyses, _readable(_optimizer_name, analyses, optimizers) or "optimizer step")
             + _readable(_memory, memory or {}))
    found = [f for i, f in sorted(enumerate(found), key=lambda p: (-p[1]["saving_ns"], _KIND_ORDER[p[1]["kind"]], p[0]))]
    for number, f in enumerate(found, 1):
        f["number"] = number
        f["share"] = round(f["saving_ns"] / step_ns, 6) if step_ns else None
        f["saving"] = f"saves ~{fmt_ns(f['saving_ns'])} per step" if f["saving_ns"] else ""
    return found


def marked_chains(findings: list[dict[str, Any]]) -> tuple[set[Any], dict[str, Any]]:
    """The chain ids worth marking on graph nodes (top ``MARK_TOP`` chains by saving, or any saving
    at least ``MARK_MIN_SHARE`` of the step) and the rule, for the graph's legend."""
    chains = [f for f in findings if f["kind"] == "unfused_chain"]
    keep = {f["chain"] for i, f in enumerate(chains) if i < MARK_TOP or (f["share"] or 0) >= MARK_MIN_SHARE}
    return keep, {"top": MARK_TOP, "min_share": MARK_MIN_SHARE, "marked": len(keep), "chains": len(chains),
                  "text": f"orange: the {min(MARK_TOP, len(chains))} unfused chains with the largest saving, "
                          f"and any saving {MARK_MIN_SHARE:.0%} of the step or more"}


def format_findings(findings: list[dict[str, Any]], limit: int = 15) -> list[str]:
    """The report's text for the findings: the same numbers as the tab."""
    if not findings:
        return []
    lines = ["   findings, by estimated saving (numbers as in the TensorBoard tab)"]
    for f in findings[:limit]:
        where = f" at {f['source']}" if f.get("source") else ""
        lines.append(f"     {f['number']:>2}. {f['title']} [{f['module_label']}]{where}"
                     + (f"  {f['saving']}" if f["saving"] else ""))
    if len(findings) > limit:
        lines.append(f"     ... {len(findings) - limit} more (see --json)")
    return lines
