"""torch-gprof: a graph-level profiler and debugger for PyTorch training steps.

Data flows one way: capture -> graph -> analyses -> store -> views.
"""
from gprof.capture.profile import profile, schedule
from gprof.graph.model import Edge, Node, StepGraph, TensorMeta
from gprof.store import load

__version__ = "0.1.0"
__all__ = ["Edge", "Node", "StepGraph", "TensorMeta", "load", "profile", "schedule", "verify"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: verify pulls in Inductor, which `import gprof` must not
    if name == "verify":
        from gprof.verify import verify

        return verify
    raise AttributeError(f"module 'gprof' has no attribute {name!r}")
