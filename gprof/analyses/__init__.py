"""Analyses: plain functions of a StepGraph whose JSON-able results are stored with the step.

``ANALYSES`` lists ``(name, analyse, format_text)``: ``analyse(graph) -> JSON-able`` runs after each
recorded step (capture -> graph -> analyses -> store), and ``format_text(step_report) -> lines``
renders the stored result in ``torch-gprof report``. A failing analysis is reported in its result
and never loses the step.
"""
from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from gprof.analyses.text import FormatText
from gprof.graph.model import StepGraph

Analyse = Callable[..., Any]

_torch_ready = False


def use_torch() -> None:
    """Give op classification and the roofline calibration their torch side. Analyses run where
    torch is (the training process, verify, benchmarks); readers that only format stored results
    (``gprof.analyses.text``) import the analysis modules without torch and never call this."""
    global _torch_ready
    if _torch_ready:
        return
    from gprof.analyses import opclass, roofline, torch_ops

    opclass.set_op_facts(torch_ops.op_facts)
    roofline.set_backend(torch_ops)
    _torch_ready = True


def registry() -> list[tuple[str, Analyse, FormatText]]:
    """In dependency order: ``compile_suggestions`` reads ``fusion`` and ``hazards``."""
    from gprof.analyses import fusion, hazards, opclass, optimizer, regions
    from gprof.analyses.text import formatters

    fmt = dict(formatters())
    return [
        ("op_classes", opclass.op_classes, fmt["op_classes"]),
        ("fusion", fusion.analyse, fmt["fusion"]),
        ("hazards", hazards.analyse, fmt["hazards"]),
        ("compile_suggestions", regions.analyse, fmt["compile_suggestions"]),
        ("optimizer_advice", optimizer.analyse, fmt["optimizer_advice"]),
    ]


#: analyses whose result depends on the fusion target: they take ``target=`` and ``gpu=``
TARGETED = frozenset({"fusion", "compile_suggestions"})


def run_all(graph: StepGraph, only: list[str] | None = None, target: str | None = None,
            gpu: str | None = None) -> dict[str, Any]:
    """Run the analyses; each result is also put in ``graph.analyses`` at once, so later analyses
    build on earlier ones instead of recomputing them. ``target`` is the fusion target, ``cpu``
    (Inductor's C++ backend) or ``cuda`` (Triton on the GPU ``gpu`` names, default H100, see
    ``gprof.analyses.gpu_specs``); ``None`` is the device the step ran on."""
    use_torch()
    results: dict[str, Any] = {}
    for name, fn, _ in registry():
        if only is not None and name not in only:
            continue
        try:
            results[name] = fn(graph, target=target, gpu=gpu) if name in TARGETED else fn(graph)
        except Exception as e:  # an analysis bug must not lose the recorded step
            warnings.warn(f"torch-gprof: analysis {name!r} failed: {e}\n{traceback.format_exc()}", RuntimeWarning,
                          stacklevel=2)
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        graph.analyses[name] = results[name]
    return results


if "torch" in sys.modules:  # where torch is loaded, analyses called one by one need no set-up either
    use_torch()
