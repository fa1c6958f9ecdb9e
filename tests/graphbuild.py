"""Small step graphs built by hand for the analyses' tests: each rule is checked on the few nodes it is about."""
from __future__ import annotations

from gprof.analyses import fusion
from gprof.graph.model import Edge, ModuleInfo, Node, StepGraph, StepMeta, TensorMeta


class G:
    """A tiny graph builder: ``t = g.op("aten.relu.default", [x], (4, 8))`` returns the output storage."""

    def __init__(self) -> None:
        self.graph = StepGraph(meta=StepMeta(run="t", step=0))
        self.writer: dict[int, int] = {}
        self.meta: dict[int, TensorMeta] = {}
        self.next_sid = 1

    def input(self, shape: tuple[int, ...], dtype: str = "float32", device: str = "cpu") -> int:
        sid = self.next_sid
        self.next_sid += 1
        self.meta[sid] = TensorMeta(shape, dtype, device, 4 * numel(shape), sid)
        return sid

    def op(self, op: str, inputs: list[int], shape: tuple[int, ...] | None = None, *, phase: str = "forward",
           module: str | None = "m", view: bool = False, dur_ns: int = 1000, source: str | None = None,
           fwd: int | None = None, dtype: str = "float32", device: str = "cpu") -> int:
        idx = len(self.graph.nodes)
        ins = tuple(self.meta[s] for s in inputs)
        if view:
            out = TensorMeta(shape or ins[0].shape, ins[0].dtype, ins[0].device, ins[0].nbytes, inputs[0])
        else:
            out = self.meta[self.input(shape or ins[0].shape, dtype, device)]
        self.meta[out.storage] = out
        for t in {t.storage: t for t in ins}.values():
            if t.storage in self.writer:
                self.graph.edges.append(Edge(self.writer[t.storage], idx, t.storage, t.nbytes))
        if not view:
            self.writer[out.storage] = idx
        self.graph.nodes.append(Node(idx=idx, key=f"{module}:{phase}:{op}#{idx}", op=op, phase=phase, module=module,
                                     inputs=ins, outputs=(out,), dur_ns=dur_ns, source=source, fwd=fwd))
        if module is not None:
            self.graph.modules.setdefault(module, ModuleInfo(module, "Block"))
        return out.storage


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def generated(graph: StepGraph, phase: str = "forward") -> list[list[str]]:
    by = {n.idx: n for n in graph.nodes}
    return [[by[i].op_short for i in k.nodes] for k in fusion.predict(graph)[phase] if k.generated]
