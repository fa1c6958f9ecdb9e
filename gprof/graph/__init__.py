"""Graph model: the nodes, edges and per-step summaries that capture produces and views read."""
from gprof.graph.keys import NodeKey, format_key, parse_key
from gprof.graph.model import (
    MEMORY_CATEGORIES,
    PHASES,
    Edge,
    MemoryCategory,
    MemorySummary,
    ModuleInfo,
    Node,
    Phase,
    StepGraph,
    StepMeta,
    TensorMeta,
)

__all__ = [
    "MEMORY_CATEGORIES", "PHASES", "Edge", "MemoryCategory", "MemorySummary", "ModuleInfo", "Node", "NodeKey", "Phase",
    "StepGraph",
    "StepMeta", "TensorMeta", "format_key", "parse_key",
]
