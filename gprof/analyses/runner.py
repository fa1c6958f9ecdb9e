"""Running the analyses, without torch's set-up: the registry, the fusion target and the loop.

``gprof.analyses.run_all`` (capture, verify, benchmarks) installs torch's op facts and roofline
calibration, then calls :func:`run`. A reader re-targeting a stored step (gprof/store/queries/retarget.py)
calls :func:`run` directly with the step's stored op facts and measured figures installed instead, so it
never imports torch; this module and the analyses it runs import none.
"""
from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from typing import Any

from gprof.analyses.gpu_specs import GPUS, gpu_spec
from gprof.analyses.text import FormatText
from gprof.graph.model import StepGraph

Analyse = Callable[..., Any]

#: fusion targets: Inductor's C++ backend, or its Triton scheduler on a GPU
TARGETS = ("cpu", "cuda")
#: analyses whose result depends on the fusion target: they take ``target=`` and ``gpu=``
TARGETED = frozenset({"fusion", "compile_suggestions"})


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


def check_target(target: str | None, gpu: str | None) -> tuple[str | None, str | None]:
    """``(target, gpu)`` as the analyses take them, or ValueError with a sentence that says what to pass.

    Checked before any analysis runs, because ``run`` keeps a failing analysis as an ``{"error": ...}``
    result: a typo would otherwise read as a broken analysis. A GPU name implies the ``cuda`` target; the
    name is returned as :data:`gprof.analyses.gpu_specs.GPUS` spells it.
    """
    if target is not None and target not in TARGETS:
        raise ValueError(f"unknown fusion target {target!r}: use one of {', '.join(TARGETS)}")
    if gpu is None:
        return target, None
    if target == "cpu":
        raise ValueError(f"a GPU ({gpu!r}) applies to the cuda target only, not to cpu")
    try:
        return "cuda", gpu_spec(gpu).name
    except KeyError:
        raise ValueError(f"unknown GPU {gpu!r}; known GPUs: {', '.join(GPUS)}") from None


def gpu_named(device_name: str | None) -> str | None:
    """The known GPU a device name such as ``cuda-NVIDIA_H100_80GB_HBM3`` is, else None (the
    analyses' default GPU then)."""
    if not device_name or not device_name.startswith("cuda"):
        return None
    try:
        return gpu_spec(device_name).name
    except KeyError:
        return None


def run(graph: StepGraph, only: list[str] | None = None, target: str | None = None,
        gpu: str | None = None) -> dict[str, Any]:
    """Run the analyses (``only`` those named); each result is also put in ``graph.analyses`` at once,
    so later analyses build on earlier ones instead of recomputing them. The caller has installed the
    op facts (``gprof.analyses.opclass``) and rooflines (``gprof.analyses.roofline``) they need."""
    results: dict[str, Any] = {}
    for name, fn, _ in registry():
        if only is not None and name not in only:
            continue
        try:
            results[name] = fn(graph, target=target, gpu=gpu) if name in TARGETED else fn(graph)
        except Exception as e:  # an analysis bug must not lose the recorded step
            warnings.warn(f"torch-gprof: analysis {name!r} failed: {e}\n{traceback.format_exc()}", RuntimeWarning,
                          stacklevel=3)
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        graph.analyses[name] = results[name]
    return results
