"""Analyses: plain functions of a StepGraph whose JSON-able results are stored with the step.

``ANALYSES`` lists ``(name, analyse, format_text)``: ``analyse(graph) -> JSON-able`` runs after each
recorded step (capture -> graph -> analyses -> store), and ``format_text(step_report) -> lines``
renders the stored result in ``torch-gprof report``. A failing analysis is reported in its result
and never loses the step.
"""
from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from typing import Any

from gprof.graph.model import StepGraph

Analyse = Callable[..., Any]
FormatText = Callable[[dict[str, Any]], list[str]]


def registry() -> list[tuple[str, Analyse, FormatText]]:
    """In dependency order: ``compile_suggestions`` reads ``fusion`` and ``hazards``."""
    from gprof.analyses import fusion, hazards, opclass, regions

    return [
        ("op_classes", opclass.op_classes, opclass.format_op_classes),
        ("fusion", fusion.analyse, fusion.format_text),
        ("hazards", hazards.analyse, hazards.format_text),
        ("compile_suggestions", regions.analyse, regions.format_text),
    ]


#: analyses whose result depends on the fusion target: they take ``target=`` and ``gpu=``
TARGETED = frozenset({"fusion", "compile_suggestions"})


def run_all(graph: StepGraph, only: list[str] | None = None, target: str | None = None,
            gpu: str | None = None) -> dict[str, Any]:
    """Run the analyses; each result is also put in ``graph.analyses`` at once, so later analyses
    build on earlier ones instead of recomputing them. ``target`` is the fusion target, ``cpu``
    (Inductor's C++ backend) or ``cuda`` (Triton on the GPU ``gpu`` names, default H100, see
    ``gprof.analyses.gpu_specs``); ``None`` is the device the step ran on."""
    results: dict[str, Any] = {}
    for name, fn, _ in registry():
        if only is not None and name not in only:
            continue
        try:
            results[name] = fn(graph, target=target, gpu=gpu) if name in TARGETED else fn(graph)
        except Exception as e:  # an analysis bug must not lose the recorded step
            warnings.warn(f"torch-gprof: analysis {name!r} failed: {e}\n{traceback.format_exc()}", RuntimeWarning)
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        graph.analyses[name] = results[name]
    return results


def format_results(step_report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, _, fmt in registry():
        value = step_report.get(name)
        if value is None:
            continue
        if isinstance(value, dict) and "error" in value and len(value) == 1:
            lines.append(f"   {name}: analysis failed: {value['error']}")
            continue
        lines.extend(fmt(step_report))
    return lines
