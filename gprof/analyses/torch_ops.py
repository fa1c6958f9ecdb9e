"""What the analyses ask of torch itself: an op overload's tags and schema, Inductor's verdict,
and the roofline calibration. The only analyses module that imports torch.

Readers (report, views) format stored results and never classify ops or measure hardware, so
:mod:`gprof.analyses.opclass` and :mod:`gprof.analyses.roofline` import no torch; the analyses'
entry point (``gprof.analyses.use_torch``, called by ``run_all`` and whenever torch is already
loaded) hands them these functions.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from functools import cache
from typing import Any

import torch

from gprof.analyses.opclass import EXTERN, POINTWISE, OpFacts

_COPY_BYTES = 32 * 1024 * 1024
_REPEATS = 5
_LAUNCHES = 200


def _overload(op: str) -> Any:
    try:
        ns, name, overload = op.split(".", 2)
        return getattr(getattr(getattr(torch.ops, ns), name), overload)
    except (AttributeError, ValueError, RuntimeError):
        return None


def alias_only(f: Any) -> bool:
    """Whether every output of the op overload ``f`` only aliases an input (a view), from its schema;
    the recorder's per-op facts (gprof/capture/records.py) and the op facts share this one test."""
    try:
        rets = f._schema.returns
    except AttributeError:
        return False
    return bool(rets) and all(r.alias_info is not None and not r.alias_info.is_write for r in rets)


def _inductor_tables(f: Any) -> str | None:
    """Inductor's own verdict, only when it is already imported (it takes seconds to import)."""
    lowering = sys.modules.get("torch._inductor.lowering")
    if lowering is None or f is None:
        return None
    if f in lowering.fallbacks:
        return EXTERN
    if f in lowering.lowerings or f.overloadpacket in lowering.lowerings:
        return POINTWISE
    return None


@cache
def op_facts(op: str) -> OpFacts:
    """Tags, alias-only schema and Inductor's verdict of an op name such as ``aten.add.Tensor``.
    Once per op and process, like ``opclass.classify`` which reads it: a step file then stores the
    facts its analyses used, and the worker does not look them up again for every step it writes."""
    f = _overload(op)
    tags = frozenset(str(t).rsplit(".", 1)[-1] for t in getattr(f, "tags", ()))
    return OpFacts(tags, f is not None and alias_only(f), _inductor_tables(f))


def torch_version() -> str:
    return torch.__version__


def device_id(device: str) -> str:
    """A cache key naming the hardware, so a cached figure is never reused on another machine."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"{platform.machine()}-{platform.processor() or 'cpu'}-{os.cpu_count()}cores-{torch.get_num_threads()}thr"
    return f"{dev.type}-{name}".replace("/", "_").replace(" ", "_")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(device: str) -> tuple[float, float]:
    """(bandwidth in bytes/s of a large copy, ns of a one-element add), measured now on ``device``
    (well under a second on CPU)."""
    from torch.utils._python_dispatch import _disable_current_modes

    dev = torch.device(device)
    with _disable_current_modes(), torch.no_grad():
        src = torch.empty(_COPY_BYTES // 4, dtype=torch.float32, device=dev).fill_(1.0)
        dst = torch.empty_like(src)
        copies = []
        for _ in range(_REPEATS):
            _sync(dev)
            t0 = time.perf_counter_ns()
            dst.copy_(src)
            _sync(dev)
            copies.append(time.perf_counter_ns() - t0)
        one = torch.ones(1, device=dev)
        dst1 = torch.empty_like(one)
        launches = []
        for _ in range(_REPEATS):
            _sync(dev)
            t0 = time.perf_counter_ns()
            for _ in range(_LAUNCHES):
                torch.add(one, one, out=dst1)
            _sync(dev)
            launches.append((time.perf_counter_ns() - t0) / _LAUNCHES)
    return 2 * _COPY_BYTES * 1e9 / max(1, min(copies)), min(launches)
