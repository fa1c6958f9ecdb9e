"""torch-gprof: a graph-level profiler and debugger for PyTorch training steps.

Data flows one way: capture -> graph -> analyses -> store -> views. Names are imported lazily, so
`torch-gprof report` and the viewers start without importing torch.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Edge", "Node", "StepGraph", "TensorMeta", "debug", "load", "profile", "schedule", "verify"]

_LAZY = {
    "profile": "gprof.capture.profile",
    "schedule": "gprof.capture.profile",
    "load": "gprof.store",
    "verify": "gprof.verify",
    "Edge": "gprof.graph.model",
    "Node": "gprof.graph.model",
    "StepGraph": "gprof.graph.model",
    "TensorMeta": "gprof.graph.model",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "debug":  # the subpackage is itself callable: gprof.debug(prof, breaks=[...])
        return importlib.import_module("gprof.debug")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gprof' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
