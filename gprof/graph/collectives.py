"""Collective ops in the graph model: what is local to one rank, DDP's gradient buckets, and the
gradient copies DDP makes around them.

Capture uses :class:`BucketTracker` while building a step, and cross-rank analysis uses it on files
whose capture did not, so it lives here, torch-free, with :data:`LOCAL_OPS`.

:class:`BucketTracker` attributes DDP's gradient allreduces to their bucket from the graph's own
dataflow (which parameters' backward ops wrote the flat buffer being reduced), so it works for
``gradient_as_bucket_view`` on or off and needs no access to DDP's reducer.
"""
from __future__ import annotations

from collections.abc import Sequence

from gprof.graph.model import Node, TensorMeta

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

    The same storage map names the parameter of the ops DDP's reducer runs from C++ with no
    autograd node of their own (:meth:`sync_param`).
    """

    def __init__(self) -> None:
        self._params_of: dict[int, list[str]] = {}
        self._bucket_of: dict[int, int] = {}
        #: parameter -> the shape of its gradient (as its AccumulateGrad ops wrote it)
        self._shape_of: dict[str, tuple[int, ...]] = {}
        #: bucket storage -> parameters whose slice of it a sync op already took, in order
        self._taken: dict[int, list[str]] = {}

    def observe(self, node: Node) -> None:
        if node.phase != "backward":
            return
        if node.attrs.get("kind") is not None:
            self._attribute(node)
        elif node.param is not None:
            for t in node.outputs:
                self._shape_of.setdefault(node.param, t.shape)
                params = self._params_of.setdefault(t.storage, [])
                if node.param not in params:
                    params.append(node.param)

    def sync_param(self, inputs: Sequence[TensorMeta], outputs: Sequence[TensorMeta]) -> str | None:
        """The parameter a backward op with no autograd node and no module works for, or None.

        DDP's reducer copies each reduced gradient out of its bucket at the end of backward
        (``as_strided`` of the bucket, then ``copy_`` into ``param.grad``) from a C++ callback, so
        autograd names no node for them. A storage that holds one parameter's gradient names it; a
        view of a bucket (several parameters) is the first parameter of that bucket, in the order
        their gradients were written into it, whose gradient shape it has and that no earlier view
        took (DDP walks a bucket in that order)."""
        for t in inputs:
            params = self._params_of.get(t.storage)
            if not params:
                continue
            if len(params) == 1:
                return params[0]
            shape = outputs[0].shape if outputs else None
            taken = self._taken.setdefault(t.storage, [])
            fits = [p for p in params if self._shape_of.get(p) == shape]
            for p in fits:
                if p not in taken:
                    taken.append(p)
                    return p
            return fits[0] if fits else None
        return None

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
        if storage in self._bucket_of:  # the bucket is reduced again (the next micro-batch): fresh views
            self._taken.pop(storage, None)
        node.attrs.setdefault("bucket", self._bucket_of.setdefault(storage, len(self._bucket_of)))
        node.attrs.setdefault("bucket_params", params)
