"""A stored step's analyses for another fusion target (``cpu`` or ``cuda`` on a named GPU), without torch.

The analyses are functions of the stored graph, so a reader can predict what Inductor would generate for a
target the step was not analysed for: ``torch-gprof report RUN --target cuda --gpu A100``, and the TUI's and
the TensorBoard tab's target selectors through :func:`analyses_for`. Two things the analyses take from torch
come from the step file instead: each op's facts (tags, alias-only schema: ``StepReader.op_facts``, stored
by the writer) and the roofline the step's machine measured (its stored ``fusion`` result, when that was
for its own device). A file written before op facts were stored raises :class:`NeedsTorchError` unless
torch's facts are installed in this process (``gprof.analyses.use_torch()``, which the report command does
for such a file); a reader never imports torch itself.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from gprof.analyses import fusion, opclass
from gprof.analyses.opclass import NeedsTorchError
from gprof.analyses.roofline import Roofline, stored_figures
from gprof.analyses.runner import TARGETED, check_target, gpu_named, run
from gprof.graph.model import StepGraph
from gprof.store.step_file import StepReader

__all__ = ["NeedsTorchError", "analyses_for"]

#: re-targeted results kept per (file, size, mtime, target, gpu): a view switching targets back and
#: forth re-runs nothing
_CACHE_SIZE = 32
_cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
#: one re-target at a time: they are CPU-bound Python, and the op facts and cache are process-wide
_lock = threading.Lock()


def analyses_for(reader: StepReader, target: str | None, gpu: str | None = None) -> dict[str, Any]:
    """The step's analyses, as ``reader.analyses()`` returns them, with the target-dependent ones
    (``gprof.analyses.TARGETED``: ``fusion``, ``compile_suggestions``) re-run for ``target`` (``cpu``,
    ``cuda``; None: the device the step ran on) and ``gpu`` (a name of ``gprof.analyses.gpu_specs.GPUS``,
    implies ``cuda``; None: the GPU the step ran on when known, else the default one).

    ValueError names the known targets/GPUs for a bad one; NeedsTorchError says what is missing when the
    file lacks what a torch-free re-target needs.
    """
    target, gpu = check_target(target, gpu)
    st = reader.path.stat()
    key = (str(reader.path.resolve()), st.st_size, st.st_mtime_ns, target, gpu)
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            hit = _cache[key] = _retarget(reader, target, gpu)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
    return dict(hit)


def _retarget(reader: StepReader, target: str | None, gpu: str | None) -> dict[str, Any]:
    facts = reader.op_facts()
    torch_here = opclass.has_torch_facts()
    if facts is None and not torch_here:
        raise NeedsTorchError(
            f"{reader.path}: this step file was written before torch-gprof stored its op facts, so re-targeting "
            "it needs torch to classify its ops (a step recorded with this torch-gprof re-targets without it)")
    if facts:
        opclass.learn_op_facts(facts)
    graph = reader.load()
    device = fusion.step_device(graph)
    figures = _measured(graph, device)
    wanted = target or ("cuda" if device.startswith("cuda") else "cpu")
    priced_on = device if device.split(":")[0] == wanted else ("cpu" if wanted == "cpu" else None)
    if priced_on is not None and priced_on not in figures and not torch_here:
        raise NeedsTorchError(
            f"{reader.path}: the {wanted} prediction is priced with {priced_on}'s measured roofline, which this "
            f"step does not hold (it was analysed for {graph.analyses.get('fusion', {}).get('target', '?')}); "
            "measuring one needs torch on that kind of machine")
    if gpu is None and wanted == "cuda":
        gpu = gpu_named(next((r.device for r in figures.values()), None))
    with stored_figures(figures):
        run(graph, only=sorted(TARGETED), target=target, gpu=gpu)
    return graph.analyses


def _measured(graph: StepGraph, device: str) -> dict[str, Roofline]:
    """The roofline the step's machine measured for its device, from the stored fusion result when that
    was analysed for the step's own device (a re-targeted one holds datasheet figures)."""
    f = graph.analyses.get("fusion")
    if not isinstance(f, dict) or f.get("target", "cpu") != device.split(":")[0]:
        return {}
    r = f.get("roofline") or {}
    try:
        return {device: Roofline(str(r["device"]), float(r["bandwidth_bps"]), float(r["launch_ns"]),
                                 graph.meta.torch_version)}
    except (KeyError, TypeError, ValueError):
        return {}
