"""What a ``gprof.profile`` block was asked to record, in one object the recorder and the step
pipeline both read (instead of the recorder reading them off the pipeline)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CaptureOptions:
    record_shapes: bool = True
    profile_memory: bool = True
    #: find the user's source line of each forward op (a frame walk per op)
    with_stack: bool = True
    with_kineto: bool = False
    #: past this many nodes a step keeps per-op aggregates only
    node_cap: int = 5_000_000
    #: steps up to this many nodes are analysed and kept as objects (``prof.graphs``)
    keep_in_memory: int = 300_000
    #: store the first N elements of each output (0: off); bounded so a step stays small
    tensor_preview: int = 0
    #: run all analyses (True), none (False), or the named ones
    analyze: bool | list[str] = True
    #: fusion target of the analyses (``cpu``/``cuda``; None: the step's device) and the GPU a cuda
    #: prediction is priced for (``gprof.analyses.gpu_specs``)
    target: str | None = None
    gpu: str | None = None
    #: records built and streamed to the step file at a time, so a huge step never sits in memory
    chunk_size: int = 50_000
