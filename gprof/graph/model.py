"""The step graph: the one data model every analysis, store and view shares.

Capture builds it, the store persists it, and `gprof.load` rebuilds exactly these objects, so an
analysis written against a live profile works unchanged on a file from last week.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from typing import Any, NamedTuple


class _StrEnum(str, Enum):
    """A string that names its allowed values. Members *are* their strings wherever a string is used
    (equality, hashing, formatting, SQLite, JSON), so stored files and code comparing with ``"forward"``
    are unchanged; only ``repr`` shows the enum. ``enum.StrEnum`` would do, but is Python 3.11+ and
    keeps Enum's name-based hash, which would make ``{"forward": ...}[Phase.FORWARD]`` miss."""

    __hash__ = str.__hash__
    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]


class Phase(_StrEnum):
    """Which part of a training step an op ran in."""

    FORWARD = "forward"
    BACKWARD = "backward"
    OPTIMIZER = "optimizer"
    OTHER = "other"
    #: forward ops re-run during backward by activation checkpointing (``fwd``: the forward node repeated);
    #: last, so the older phases keep their positions in PHASES
    RECOMPUTE = "recompute"


class MemoryCategory(_StrEnum):
    """What a storage holds, named and split the way ``torch.distributed._tools.mem_tracker`` does."""

    PARAMETER = "parameter"
    BUFFER = "buffer"
    GRADIENT = "gradient"
    ACTIVATION = "activation"
    OPTIMIZER = "optimizer"
    TEMPORARY = "temporary"
    OTHER = "other"


PHASES = tuple(p.value for p in Phase)
MEMORY_CATEGORIES = tuple(c.value for c in MemoryCategory)


class TensorMeta(NamedTuple):
    """What a node read or wrote; ``storage`` is the storage id that links producers to consumers
    even when autograd hands a saved tensor back as a new Python object. A NamedTuple: a step
    builds millions of these, and a frozen dataclass is four times slower to construct."""

    shape: tuple[int, ...]
    dtype: str
    device: str
    nbytes: int
    storage: int

    def short(self) -> str:
        from gprof.graph.formatting import dtype_abbrev

        return f"{dtype_abbrev(self.dtype)}[{','.join(map(str, self.shape))}]"


@cache
def short_op_name(op: str) -> str:
    """Cached: the analyses ask it of every node several times, and a step has few distinct ops."""
    parts = op.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] in ("aten", "prims", "c10d", "_c10d_functional") else op


@dataclass(slots=True)
class Node:
    """One aten op of the step. Fields mirror what PyTorch users already know from
    torch.profiler (op name, shapes, self time) plus what only a graph can give (partner, edges)."""

    idx: int
    key: str
    op: str
    #: a :class:`Phase` when captured live, its plain string when read from a file (they compare equal)
    phase: str
    module: str | None
    inputs: tuple[TensorMeta, ...] = ()
    outputs: tuple[TensorMeta, ...] = ()
    start_ns: int = 0
    dur_ns: int = 0
    device_ns: int | None = None
    alloc_bytes: int = 0
    freed_bytes: int = 0
    live_bytes: int = 0
    flops: int = 0
    source: str | None = None
    thread: int = 0
    rank: int = 0
    fwd: int | None = None
    param: str | None = None
    grad_fn: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def op_short(self) -> str:
        """``aten.addmm.default`` -> ``addmm``: what people call the op."""
        return short_op_name(self.op)


@dataclass(frozen=True, slots=True)
class Edge:
    """Producer -> consumer dataflow through one storage."""

    src: int
    dst: int
    storage: int
    nbytes: int


@dataclass(slots=True)
class ModuleInfo:
    fqn: str
    type: str
    #: the class comes with PyTorch (torch.nn.*): in-place ``module.compile()`` leaves such modules eager
    #: before torch 2.14 (Dynamo skips torch's own files) and from 2.14 recompiles them under the profiler's
    #: module hooks (gprof/capture/modules.py), so snippets use ``torch.compile(module)``
    builtin: bool = False


@dataclass(slots=True)
class MemorySummary:
    peak_bytes: int = 0
    peak_node: int | None = None
    #: live bytes by category at the peak
    by_category: dict[str, int] = field(default_factory=dict)
    #: bytes saved for backward, by the module that saved them
    saved_activations: dict[str, int] = field(default_factory=dict)
    baseline_bytes: int = 0
    #: bytes backward read that activation checkpointing recomputed instead of saving, by module: the
    #: activation memory checkpointing saves (absent from files written before it existed)
    recomputed_activations: dict[str, int] = field(default_factory=dict)
    #: live bytes by category along the step: {"nodes": [idx, ...], "categories": {cat: [bytes, ...]}},
    #: sampled at each bucket's highest node (at most ~1000 points), the peak node included
    curve: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StepMeta:
    run: str
    step: int
    rank: int = 0
    world_size: int = 1
    complete: bool = True
    error: str | None = None
    #: the ops after the last step boundary, saved when the block ended (``step_boundary="optimizer"``):
    #: not a whole training step, so views skip it by default. Files written before it existed lack it.
    partial: bool = False
    torch_version: str = ""
    hostname: str = ""
    pid: int = 0
    created: float = 0.0
    wall_ns: int = 0
    node_count: int = 0
    aggregate_only: bool = False
    devices: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    #: the writing session (gprof/capture/storage.py): tells apart the steps of two runs under one
    #: name. Files written before it existed lack it.
    session: str = ""


@dataclass(slots=True)
class StepGraph:
    """A whole recorded step. Analyses are plain functions of this object."""

    meta: StepMeta
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    modules: dict[str, ModuleInfo] = field(default_factory=dict)
    memory: MemorySummary = field(default_factory=MemorySummary)
    #: results of analyses, JSON-serialisable, keyed by analysis name
    analyses: dict[str, Any] = field(default_factory=dict)
    #: aggregate-only counters when the node cap was hit: op -> [count, total_ns]
    aggregates: dict[str, list[int]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def by_phase(self, phase: str) -> list[Node]:
        return [n for n in self.nodes if n.phase == phase]

    def node_by_key(self, key: str) -> Node | None:
        for n in self.nodes:
            if n.key == key:
                return n
        return None

    def consumers(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for e in self.edges:
            out.setdefault(e.src, []).append(e.dst)
        return out

    def producers(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for e in self.edges:
            out.setdefault(e.dst, []).append(e.src)
        return out
