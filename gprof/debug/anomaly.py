"""Anomaly mode (``nan`` / ``inf``): which op first made non-finite values, and where values that
were already non-finite entered the step.

Two ways a NaN shows up in a step:

* an op *makes* it: its output has a NaN that none of its inputs had (an overflow, Inf - Inf);
* it *enters* from outside: a batch, a parameter, a buffer or optimizer state already holds it.
  The first op that reads such a tensor is where the step meets it (reported once per step).

Checking inputs costs a reduction per tensor, so only storages the step did not write itself are
checked, each once per step (the dataflow below knows which storages the step wrote).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gprof.debug.tensors import nonfinite_kinds
from gprof.graph.model import Node

#: ops whose output is uninitialized memory by contract; garbage NaNs there are no anomaly
_UNINITIALIZED = frozenset({"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty",
                            "new_empty_strided", "resize_"})


def uninitialized(node: Node) -> bool:
    """Whether ``node``'s output is uninitialized memory by contract (``empty`` and its kin): its
    values, NaN or huge, are garbage, so no value condition (``nan``, ``inf``, ``absmax``) looks at them."""
    return node.op_short in _UNINITIALIZED


def kinds_text(nan: bool, inf: bool) -> str:
    return "+".join(k for k, v in (("NaN", nan), ("Inf", inf)) if v)


@dataclass
class _NodeFacts:
    """What the provenance walk needs about an earlier node whose output was non-finite."""

    idx: int
    key: str
    op: str
    module: str | None
    phase: str
    kinds: str
    source: str | None
    #: (storage id, kinds, what the tensor is) of each non-finite input, likeliest culprit first
    bad_inputs: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class Finding:
    """One node's verdict: new NaN / Inf made here, and what entered here from outside."""

    new_nan: bool = False
    new_inf: bool = False
    #: "batch input 0 holds NaN at [3, 7]", per kind, when a tensor from outside first read here holds it
    entering: dict[str, str] = field(default_factory=dict)


def _first_index(t: torch.Tensor, test: Callable[[torch.Tensor], torch.Tensor]) -> list[int]:
    d = t.detach()
    d = torch.view_as_real(d) if d.is_complex() else d
    hit = test(d).nonzero()
    return hit[0].tolist() if hit.numel() else []


class AnomalyTracker:
    """Per step: the writer of each storage, the facts of nodes with non-finite outputs, and the
    outside storages already checked. ``names()`` maps ``id(tensor)`` to what a state tensor is
    (``parameter enc.weight``, ``buffer ...``, ``optimizer state ...``)."""

    def __init__(self, names: Callable[[], dict[int, str]]) -> None:
        self._names = names
        self.reset()

    def reset(self) -> None:
        self._writer_of: dict[int, int] = {}
        #: storages last written outside the training step proper (phase other)
        self._set_up: set[int] = set()
        self._bad: dict[int, _NodeFacts] = {}
        #: outside storage id -> what it is ("parameter enc.weight", "batch input 0")
        self._outside: dict[int, str] = {}
        self._inputs_seen = 0
        self._state_names: dict[int, str] | None = None
        #: kinds already reported as entering this step: when every parameter went NaN at the last
        #: optimizer step, the step stops once, at the first, not once per parameter
        self._entered: set[str] = set()

    def _describe_outside(self, t: torch.Tensor, phase: str) -> str:
        if self._state_names is None:  # once per step: the names of parameters, buffers, state
            self._state_names = self._names()
        names = self._state_names
        base = t._base if t._base is not None else t
        name = names.get(id(t)) or names.get(id(base))
        if name:
            return name
        n = self._inputs_seen
        self._inputs_seen += 1
        return f"batch input {n}" if phase == "forward" else f"tensor #{n} from outside the step"

    def _check_outside(self, node: Node, ins: list[torch.Tensor], finding: Finding) -> None:
        """Each storage the training step proper (forward, backward, optimizer) did not write is
        checked the first time one of its ops reads it. What code outside them wrote (phase
        ``other``: building the model, loading the batch) still counts as from outside, so a
        wrapped script's set-up is where a value comes *from*, not where the step meets it."""
        if node.phase == "other" or node.op_short.startswith("lift_fresh"):  # lift_fresh: Python data
            return
        for t, meta in zip(ins, node.inputs):
            sid = meta.storage
            if not sid or (sid in self._writer_of and sid not in self._set_up) or sid in self._outside:
                continue
            what = self._outside[sid] = self._describe_outside(t, node.phase)
            nan, inf = nonfinite_kinds(t)
            for kind, present, test in (("nan", nan, torch.isnan), ("inf", inf, torch.isinf)):
                if present and kind not in self._entered:
                    self._entered.add(kind)
                    at = _first_index(t, test)
                    finding.entering[kind] = f"{what} holds {'NaN' if kind == 'nan' else 'Inf'}" + (f" at {at}" if at else "")

    def observe(self, node: Node, ins: list[torch.Tensor], outs: list[torch.Tensor]) -> Finding:
        """Check one node and remember what the provenance walk needs."""
        finding = Finding()
        self._check_outside(node, ins, finding)
        out_k = [(False, False) if uninitialized(node) else nonfinite_kinds(t) for t in outs]
        if any(n or i for n, i in out_k):
            in_k = [nonfinite_kinds(t) for t in ins]
            finding.new_nan = any(k[0] for k in out_k) and not any(k[0] for k in in_k)
            finding.new_inf = any(k[1] for k in out_k) and not any(k[1] for k in in_k)
            bad = [(meta.storage, kinds_text(*k), self._outside.get(meta.storage) or f"tensor {meta.short()}")
                   for meta, k in zip(node.inputs, in_k) if k[0] or k[1]]
            bad.sort(key=lambda b: b[0] in self._writer_of)  # values from outside are the likelier culprit
            self._bad[node.idx] = _NodeFacts(node.idx, node.key, node.op, node.module, node.phase,
                                             kinds_text(any(k[0] for k in out_k), any(k[1] for k in out_k)),
                                             node.source, bad)
        in_storages = {m.storage for m in node.inputs}
        inplace = node.op_short.endswith("_")
        for meta in node.outputs:
            if inplace or meta.storage not in in_storages:  # a view keeps the earlier writer
                self._writer_of[meta.storage] = node.idx
                if node.phase == "other":
                    self._set_up.add(meta.storage)
                else:
                    self._set_up.discard(meta.storage)
        return finding

    def chain(self, node: Node, entering: str | None = None) -> list[dict[str, Any]]:
        """From ``node`` back to where the non-finite values came from: an outside tensor holding
        them (``entering``, when they entered at ``node`` itself), or an op that made them from
        finite inputs."""
        if entering is not None:  # the values entered here: the chain starts and ends at this node
            return [{"idx": node.idx, "key": node.key, "op": node.op, "module": node.module, "phase": node.phase,
                     "makes": None, "source": node.source, "from": entering, "origin": entering}]
        chain: list[dict[str, Any]] = []
        seen: set[int] = set()
        cur: int | None = node.idx
        while cur is not None and cur not in seen:
            seen.add(cur)
            facts = self._bad.get(cur)
            if facts is None:
                break
            entry = {"idx": facts.idx, "key": facts.key, "op": facts.op, "module": facts.module,
                     "phase": facts.phase, "makes": facts.kinds, "source": facts.source, "from": None, "origin": None}
            chain.append(entry)
            if not facts.bad_inputs:
                entry["origin"] = f"{facts.op} turned finite inputs into {facts.kinds}"
                break
            storage, kinds, what = facts.bad_inputs[0]
            writer = self._writer_of.get(storage)
            if writer is None or writer >= facts.idx or writer not in self._bad:
                entry["from"] = f"{what} holding {kinds}"
                entry["origin"] = f"{what} holds {kinds}"
                break
            entry["from"] = f"node {writer} ({kinds})"
            cur = writer
        return chain
