"""The training state a step runs against: the modules' parameters and buffers, the gradients, and
the optimizers' state. The builder needs it to put memory in categories and to attribute
optimizer ops to the module whose parameter they update; it is read at step boundaries only.

Under FSDP2 these tensors are DTensors: each is listed with its local shard (see
:mod:`gprof.capture.memory`), so a rank's parameter, gradient and optimizer bytes are its shards."""
from __future__ import annotations

import weakref

import torch

from gprof.capture.memory import StorageTracker, local_tensor
from gprof.capture.modules import ModuleScope
from gprof.graph.model import MemoryCategory

#: (parameter's fully qualified name, class name of the optimizer that updates it, if known)
StateOwner = tuple[str, str | None]


class TrainingState:
    """Finds the state tensors through the module scope and the optimizers seen so far."""

    def __init__(self, scope: ModuleScope, tracker: StorageTracker) -> None:
        self.scope = scope
        self.tracker = tracker
        #: every optimizer whose step() ran in the block (filled by the pipeline's optimizer hook)
        self.optimizers: weakref.WeakSet[torch.optim.Optimizer] = weakref.WeakSet()

    def tensors(self) -> dict[MemoryCategory, list[torch.Tensor]]:
        """State tensors by category, in the order later categories win (see :meth:`categories`);
        a wrapper subclass is followed by its local tensor."""
        out: dict[MemoryCategory, list[torch.Tensor]] = {
            MemoryCategory.PARAMETER: [], MemoryCategory.BUFFER: [], MemoryCategory.GRADIENT: [],
            MemoryCategory.OPTIMIZER: [],
        }
        for mod in self.scope.known_modules():
            for p in mod.parameters(recurse=False):
                out[MemoryCategory.PARAMETER].append(p)
                if p.grad is not None:
                    out[MemoryCategory.GRADIENT].append(p.grad)
            out[MemoryCategory.BUFFER].extend(b for b in mod.buffers(recurse=False) if b is not None)
        for opt in list(self.optimizers):
            for state in opt.state.values():
                out[MemoryCategory.OPTIMIZER].extend(v for v in state.values() if isinstance(v, torch.Tensor))
        for ts in out.values():
            ts.extend([local for t in ts if (local := local_tensor(t)) is not None])
        return out

    def params_by_storage(self) -> dict[int, StateOwner]:
        """Storage id -> the parameter (and its optimizer's class) for parameters, their grads and
        their optimizer state: the builder attributes optimizer ops, and shares fused ones, by it."""
        out: dict[int, StateOwner] = {}
        sids_of = self.tracker.sids_of
        opt_of: dict[int, str] = {}
        for opt in list(self.optimizers):
            for group in opt.param_groups:
                for p in group["params"]:
                    opt_of[id(p)] = type(opt).__name__
        for pid, (ref, name) in self.scope.params.items():
            p = ref()
            if p is None:
                continue
            owner = (name, opt_of.get(pid))
            for t in (p, p.grad):
                if t is not None:
                    for sid in sids_of(t):
                        out[sid] = owner
        for opt in list(self.optimizers):
            for p, state in opt.state.items():
                pname = self.scope.param_name(p)
                if pname is None:
                    continue
                for v in state.values():
                    if isinstance(v, torch.Tensor):
                        for sid in sids_of(v):
                            out[sid] = (pname, type(opt).__name__)
        return out

    def categories(self) -> dict[int, str]:
        """Storage id -> memory category of every state tensor."""
        cats: dict[int, str] = {}
        # later categories win, as in MemTracker: a gradient is never counted as a parameter
        for cat, ts in self.tensors().items():
            for t in ts:
                for sid in self.tracker.sids_of(t):
                    cats[sid] = cat
        return cats
