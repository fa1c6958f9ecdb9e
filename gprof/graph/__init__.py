"""Graph model: the nodes, edges and per-step summaries that capture produces and views read."""
from gprof.graph.keys import NodeKey, format_key, parse_key
from gprof.graph.model import (
    MEMORY_CATEGORIES,
    PHASES,
    Edge,
    MemorySummary,
    ModuleInfo,
    Node,
    StepGraph,
    StepMeta,
    TensorMeta,
)

__all__ = [
    "MEMORY_CATEGORIES", "PHASES", "Edge", "MemorySummary", "ModuleInfo", "Node", "NodeKey", "StepGraph",
    "StepMeta", "TensorMeta", "format_key", "parse_key",
]
