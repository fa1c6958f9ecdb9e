"""Collective ops in the graph model: what is local to one rank, and DDP's gradient buckets.

Capture uses :class:`BucketTracker` while building a step, and cross-rank analysis uses it on files
whose capture did not, so it lives here, torch-free, with :data:`LOCAL_OPS`.

:class:`BucketTracker` attributes DDP's gradient allreduces to their bucket from the graph's own
dataflow (which parameters' backward ops wrote the flat buffer being reduced), so it works for
``gradient_as_bucket_view`` on or off and needs no access to DDP's reducer.
"""
from __future__ import annotations

from gprof.graph.model import Node

#: kinds (see ``gprof.capture.collectives.collective_kind``) in the collective namespaces that only
#: wait on or wrap a collective's result on this rank: not part of the sequence ranks must agree on
LOCAL_OPS = frozenset({"waittensor", "wraptensorautograd"})


class BucketTracker:
    """Numbers DDP's gradient allreduces by bucket and names the parameters each one carries.

    Feed it every node of a step in order (:meth:`observe`). A backward node attributed to a
    parameter (``node.param``, the AccumulateGrad case) that writes a storage marks that storage as
    holding the parameter's gradient; a backward collective whose input is such a storage is that
    parameters' bucket. Buckets are numbered in issue order, which is DDP's bucket order once it
    has rebuilt its buckets after the first iteration.
    """

    def __init__(self) -> None:
        self._params_of: dict[int, list[str]] = {}
        self._bucket_of: dict[int, int] = {}

    def observe(self, node: Node) -> None:
        if node.phase != "backward":
            return
        if node.attrs.get("kind") is not None:
            self._attribute(node)
        elif node.param is not None:
            for t in node.outputs:
                params = self._params_of.setdefault(t.storage, [])
                if node.param not in params:
                    params.append(node.param)

    def _attribute(self, node: Node) -> None:
        params: list[str] = []
        storage = None
        for t in node.inputs:
            for p in self._params_of.get(t.storage, ()):
                storage = t.storage
                if p not in params:
                    params.append(p)
        if node.param is not None and node.param not in params:
            params.append(node.param)  # the parameter whose gradient made the bucket ready
        if storage is None and node.inputs:
            storage = node.inputs[0].storage
        if storage is None or not params:
            return
        node.attrs.setdefault("bucket", self._bucket_of.setdefault(storage, len(self._bucket_of)))
        node.attrs.setdefault("bucket_params", params)
