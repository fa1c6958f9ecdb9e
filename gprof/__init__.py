"""torch-gprof: a graph-level profiler and debugger for PyTorch training steps.

Data flows one way: capture -> graph -> analyses -> store -> views.
"""
from gprof.capture.profile import profile, schedule
from gprof.graph.model import Edge, Node, StepGraph, TensorMeta
from gprof.store import load

__version__ = "0.1.0"
__all__ = ["Edge", "Node", "StepGraph", "TensorMeta", "load", "profile", "schedule"]
