"""Analyses: plain functions of a StepGraph whose JSON-able results are stored with the step.

``registry()`` lists ``(name, analyse, format_text)``: ``analyse(graph) -> JSON-able`` runs after each
recorded step (capture -> graph -> analyses -> store), and ``format_text(step_report) -> lines``
renders the stored result in ``torch-gprof report``. A failing analysis is reported in its result
and never loses the step. The loop itself is :mod:`gprof.analyses.runner`, which readers re-targeting
a stored step use without torch.
"""
from __future__ import annotations

import sys
from typing import Any

from gprof.analyses.runner import TARGETED, TARGETS, check_target, gpu_named, registry, run
from gprof.graph.model import StepGraph

__all__ = ["TARGETED", "TARGETS", "registry", "run_all", "use_torch"]

_torch_ready = False


def use_torch() -> None:
    """Give op classification and the roofline calibration their torch side. Analyses run where
    torch is (the training process, verify, benchmarks); readers that only format stored results
    (``gprof.analyses.text``) or re-target a step with stored op facts import the analysis modules
    without torch and never call this."""
    global _torch_ready
    if _torch_ready:
        return
    from gprof.analyses import opclass, roofline, torch_ops

    opclass.set_op_facts(torch_ops.op_facts)
    roofline.set_backend(torch_ops)
    _torch_ready = True


def run_all(graph: StepGraph, only: list[str] | None = None, target: str | None = None,
            gpu: str | None = None) -> dict[str, Any]:
    """Run the analyses with torch's facts. ``target`` is the fusion target, ``cpu`` (Inductor's C++
    backend) or ``cuda`` (Triton on the GPU ``gpu`` names, see ``gprof.analyses.gpu_specs``); ``None``
    is the device the step ran on. Without ``gpu``, a step that ran on a known GPU is predicted for that
    GPU, else for the default one. Bad values raise ValueError before anything runs."""
    from gprof.analyses import fusion, torch_ops

    target, gpu = check_target(target, gpu)
    use_torch()
    device = fusion.step_device(graph)
    if gpu is None and device.startswith("cuda"):
        gpu = gpu_named(torch_ops.device_id(device))
    return run(graph, only, target, gpu)


if "torch" in sys.modules:  # where torch is loaded, analyses called one by one need no set-up either
    use_torch()
