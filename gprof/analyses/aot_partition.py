"""What AOTAutograd moves between the forward and the backward graph, for fusion prediction.

Inductor compiles a forward and a backward graph that AOTAutograd's partitioner cut from one joint
graph: it recomputes cheap forward work in backward kernels, saves masks instead of values, hoists
tangent-free backward work into the forward, and differentiates values eager never did (outputs
that leave a graph at a graph break). Each function here edits predicted kernels in place.
"""
from __future__ import annotations

from gprof.analyses import hazards as hz
from gprof.analyses.fusion_rules import ALONE, BOUNDARY, FREE, POINT, ROW, Kernel, consumers_of, through_free
from gprof.analyses.opclass import RANDOM, node_class
from gprof.analyses.triton_rules import BATCH_NORM_BACKWARDS, BATCH_NORMS, SECOND_STAGE
from gprof.graph.model import Node, StepGraph

MASK_ONLY_BACKWARD = frozenset({"threshold_backward", "hardtanh_backward", "leaky_relu_backward"})
#: backward ops whose decomposition starts with a part that reads no gradient and is no larger than
#: what it reads, which the partitioner computes in the forward and saves instead (Inductor's forward
#: kernels list them, their origins tagged ``is_backward``): layer norm's ``rstd / N`` (not when the
#: normalisation is recomputed in the backward, which then needs ``rstd`` itself), MSE's
#: ``2 * (input - target) / N`` (one tensor saved instead of two)
TANGENT_FREE_PART = frozenset({"native_layer_norm_backward", "mse_loss_backward"})


def partition(graph: StepGraph, kernels: dict[str, list[Kernel]], producers: dict[int, list[int]],
              node_roles: dict[int, str], seg: dict[int, int]) -> None:
    """What AOTAutograd's min-cut partitioner (``torch/_functorch/partitioners.py``,
    ``min_cut_rematerialization_partition``) moves between the forward and the backward graph, in
    place on ``kernels``. It saves the cheapest set of forward values the backward needs; pointwise
    work on top of them is recomputed in the backward kernels that read it. At the level of eager ops:

    - a forward value is *available* to the backward when saving it costs nothing extra: a value the
      backward reads that cannot be recomputed (an extern's or a random op's output, a reduction
      whose output is over 4x smaller than its input: ``should_ban_recomputation``), one a backward
      extern reads (a matmul's input, for the weight gradient), a graph input or parameter;
    - a pointwise forward op (or a normalisation/softmax whose output has its input's size) whose
      output the backward reads, in the same Dynamo graph, is *recomputed* in each backward kernel
      that reads it (``Kernel.also``) when its inputs are available or recomputable the same way
      (cnn: ``relu(batch_norm(conv))`` from the saved conv output and statistics); or when it is not
      materialised in the forward (no extern reads it) while its other inputs are: a materialised
      value weighs half a fused one in ``get_node_weight``, so the partitioner saves the matmul output
      under a ``tanh``/``softmax``/``log_softmax`` and recomputes that op;
    - otherwise, when the backward reads the value only through a mask (``threshold_backward``), the
      boolean mask is saved: it is computed in the forward kernel that produces the value;
    - a pointwise backward op that reads no gradient (only forward values: the ``2 * x`` of
      ``pow(x, 2)``'s backward) and is no larger than what it reads is moved into the forward kernel
      of its last producer: its output is saved instead of its inputs (the partitioner places every
      node outside the tangents' closure in the forward).
    """
    fwd = [n for n in graph.nodes if n.phase == "forward"]
    bwd = [n for n in graph.nodes if n.phase == "backward"]
    if not fwd or not bwd:
        return
    nodes = fwd + bwd
    by = {n.idx: n for n in nodes}
    roles = {n.idx: node_roles[n.idx] for n in nodes}
    prod = through_free(nodes, roles, producers)
    cons = consumers_of(prod)
    kernel_of = {i: k for ph in ("forward", "backward") for k in kernels[ph] for i in k.nodes}
    read_bytes: dict[tuple[int, int], int] = {}
    written: dict[int, set[int]] = {}  # storages a node reads that some node of the step wrote
    for e in graph.edges:
        if e.src in by and e.dst in by:
            read_bytes[(e.src, e.dst)] = max(read_bytes.get((e.src, e.dst), 0), e.nbytes)
            written.setdefault(e.dst, set()).add(e.storage)

    def is_fwd(i: int) -> bool:
        return i in by and by[i].phase == "forward"

    def inputs(v: int) -> list[int]:  # producers in the same forward graph (others are graph inputs)
        return [p for p in prod.get(v, ()) if is_fwd(p) and seg.get(p) == seg.get(v)]

    def out_bytes(n: Node) -> int:
        return n.outputs[0].nbytes if n.outputs else 0

    def big_read(v: int, b: int) -> bool:  # reads the value itself, not a small statistic of it
        return read_bytes.get((v, b), out_bytes(by[v])) * 4 > out_bytes(by[v])

    random_derived: set[int] = set()
    for n in fwd:  # a random op and the pointwise scaling of its mask: cannot be recomputed
        ins = inputs(n.idx)
        if node_class(n) == RANDOM or (roles[n.idx] == POINT and ins and all(p in random_derived for p in ins)):
            random_derived.add(n.idx)

    def shrinks(n: Node) -> bool:
        return bool(n.inputs) and out_bytes(n) * 4 < max(t.nbytes for t in n.inputs)

    def eligible(n: Node) -> bool:
        return roles[n.idx] in (POINT, ROW) and n.idx not in random_derived and not shrinks(n)

    readers = {v.idx: [b for b in cons.get(v.idx, ()) if by[b].phase == "backward" and seg.get(b) == seg.get(v.idx)
                       and roles[b] != FREE] for v in fwd}
    available: set[int] = set()
    for n in fwd:
        big = [b for b in readers[n.idx] if big_read(n.idx, b)]
        if any(roles[b] in (BOUNDARY, ALONE) for b in big) or (big and not eligible(n)):
            available.add(n.idx)

    def materialised(v: int) -> bool:
        return roles[v] in (BOUNDARY, ALONE) or any(
            roles[c] in (BOUNDARY, ALONE) or seg.get(c) != seg.get(v)
            for c in cons.get(v, ()) if by[c].phase == "forward")

    recomputed: set[int] = set()

    def recomputable(v: int, seen: frozenset[int] = frozenset()) -> bool:
        if v in available or v in recomputed:
            return True
        if v in seen or not eligible(by[v]):
            return False
        return all(recomputable(p, seen | {v}) for p in inputs(v))

    def recompute(v: int) -> None:
        if v in available or v in recomputed:
            return
        recomputed.add(v)
        for p in inputs(v):
            recompute(p)

    candidates = [v.idx for v in fwd if eligible(v) and v.idx not in available
                  and any(big_read(v.idx, b) for b in readers[v.idx])]
    changed = True
    while changed:
        changed = False
        for v in candidates:
            if v in recomputed:
                continue
            ins = inputs(v)
            if all(recomputable(p) for p in ins):
                recompute(v)
            elif all(by[b].op_short in MASK_ONLY_BACKWARD for b in readers[v]):
                continue  # decided below, once nothing else can become available
            elif not materialised(v) and all(p in available or p in recomputed or materialised(p) for p in ins):
                for p in ins:
                    if p not in recomputed:
                        available.add(p)
                recomputed.add(v)
            else:
                continue
            changed = True

    def needs(v: int) -> list[int]:  # v and the recomputed values it is computed from, in op order
        out, todo = set(), [v]
        while todo:
            x = todo.pop()
            if x in out:
                continue
            out.add(x)
            todo.extend(p for p in inputs(x) if p in recomputed)
        return sorted(out)

    # a reader's work split off into kernels of their own reads the value too (Triton: a batch norm
    # backward's statistics, a layer norm backward's column part; not the second stage of a split)
    split_off: dict[int, list[Kernel]] = {}
    for part in kernels["backward"]:
        if part.generated and not part.nodes and len(part.also) == 1 and part.note != SECOND_STAGE:
            split_off.setdefault(part.also[0], []).append(part)
    for v in sorted(recomputed):
        for b in readers[v]:
            for k in [kernel_of.get(b), *split_off.get(b, ())]:
                if k is not None and k.generated and big_read(v, b):
                    k.also.extend(i for i in needs(v) if i not in k.also)
    # the joint graph's CSE (``fx_graph_cse``, run by ``min_cut_rematerialization_partition``) merges
    # batch norm backward's ``input - mean`` (``torch/_decomp/decompositions.py``
    # ``native_batch_norm_backward``) with its forward's, so the kernels that compute it in the backward
    # (the statistics split off on Triton, and the pointwise part) recompute that forward node
    for n in bwd:
        f = by.get(n.fwd) if n.fwd is not None else None
        if n.op_short in BATCH_NORM_BACKWARDS and f is not None and f.op_short in BATCH_NORMS and split_off.get(n.idx):
            for k in [*split_off[n.idx], kernel_of.get(n.idx)]:
                if k is not None and k.generated and f.idx not in k.also:
                    k.also.append(f.idx)
    for v in candidates:
        if v not in recomputed and readers[v] and all(by[b].op_short in MASK_ONLY_BACKWARD for b in readers[v]):
            k = kernel_of.get(v)
            if k is not None and k.generated:
                k.also.extend(b for b in readers[v] if b not in k.also)
    for n in bwd:
        f = by.get(n.fwd) if n.fwd is not None else None
        if n.op_short not in TANGENT_FREE_PART or f is None or f.phase != "forward" or seg.get(f.idx) != seg.get(n.idx):
            continue
        if n.op_short == "native_layer_norm_backward" and any(p in recomputed for p in inputs(f.idx)):
            continue
        k = kernel_of.get(f.idx)
        if k is not None and k.generated and n.idx not in k.also:
            k.also.append(n.idx)

    # tangent-independent backward work moves to the forward
    hoisted: set[int] = set()
    for n in bwd:
        ps = prod.get(n.idx, [])
        if roles[n.idx] != POINT or node_class(n) == RANDOM or not ps or n.idx not in kernel_of:
            continue
        if not all((is_fwd(p) and seg.get(p) == seg.get(n.idx)) or p in hoisted for p in ps):
            continue
        if any(t.storage not in written.get(n.idx, ()) for t in n.inputs):
            continue  # reads a tensor from outside the step: possibly the gradient itself
        if out_bytes(n) > max((t.nbytes for t in n.inputs), default=0):
            continue
        last = max(ps, key=lambda p: (p in hoisted, p))
        target = kernel_of.get(last)
        if target is None or not target.generated or target.phase != "forward":
            continue
        kernel_of[n.idx].nodes.remove(n.idx)
        target.nodes.append(n.idx)
        kernel_of[n.idx] = target
        hoisted.add(n.idx)
    if hoisted:
        kernels["backward"] = [k for k in kernels["backward"] if k.nodes or k.note]

#: backward formulas of ``tools/autograd/derivatives.yaml`` (shipped as
#: ``torchgen/packaged/autograd/derivatives.yaml``) with their helpers in
#: ``torch/csrc/autograd/FunctionsManual.cpp``, as the aten ops AOTAutograd traces them:
#: op -> (backward ops, what of the forward they read: "self" the input, "result" the output, "" nothing).
#: ``clamp`` is taken with both bounds (``clamp_backward``: ``where((self >= min).logical_and(self <= max),
#: grad, 0)``); the recorded step keeps no scalar arguments.
ZERO_GRAD_FORMULAS: dict[str, tuple[tuple[str, ...], str]] = {
    "mean": (("expand", "div"), ""),  # mean_backward: grad.expand(sizes) / numel
    "sum": (("expand",), ""),  # sum_backward
    "abs": (("sgn", "mul"), "self"),  # grad * self.sgn()
    "mul": (("mul",), ""),  # mul by a scalar: grad * other (two tensors: not modelled)
    "div": (("div",), ""),  # by a scalar: grad / other
    "neg": (("neg",), ""),
    "clamp": (("ge", "le", "logical_and", "where"), "self"),
    "clamp_min": (("ge", "where"), "self"),
    "clamp_max": (("le", "where"), "self"),
    "relu": (("threshold_backward",), "result"),
    "tanh": (("tanh_backward",), "result"),
    "sigmoid": (("sigmoid_backward",), "result"),
    "exp": (("mul",), "result"),
}


def graph_break_outputs(graph: StepGraph, kernels: dict[str, list[Kernel]], producers: dict[int, list[int]],
                        node_roles: dict[int, str], seg: dict[int, int]) -> None:
    """A value computed from parameters that leaves a Dynamo graph into a graph-break hazard
    (``h.mean().clamp(1, 3).item()``) is an output of that graph with ``requires_grad``. Eager never
    differentiates it (nothing from it reaches the loss), but AOTAutograd traces the joint graph for
    every differentiable output (``torch/_functorch/_aot_autograd/``: each such output gets a tangent
    input; an unused one is a zero tensor) and runs the ops' backward formulas on it, the result
    accumulated (``add``) into the gradient of the value the branch left from. Inductor fuses that
    pointwise work into the backward kernel that consumes that gradient (the branch point's own
    backward). Listed in ``Kernel.extra`` (formulas from ``ZERO_GRAD_FORMULAS``) and ``Kernel.also``
    (forward ops recomputed for a formula that reads its input; a reduction's output is saved); a chain
    with an op outside the table is left alone. Counts do not change: the work joins an existing kernel."""
    nodes = [n for n in graph.nodes if n.phase in ("forward", "backward")]
    by = {n.idx: n for n in nodes}
    partner: dict[int, list[int]] = {}
    for n in nodes:
        if n.phase == "backward" and n.fwd is not None:
            partner.setdefault(n.fwd, []).append(n.idx)
    roles = {n.idx: node_roles[n.idx] for n in nodes}
    prod = through_free(nodes, roles, producers)
    kernel_of = {i: k for k in kernels.get("backward", []) for i in k.nodes}
    fwd = [n for n in nodes if n.phase == "forward"]
    requires: set[int] = set()
    for n in fwd:  # floating outputs of differentiated ops, or of ops reading one
        floating = bool(n.outputs) and "float" in n.outputs[0].dtype
        if floating and (n.idx in partner or any(p in requires for p in prod.get(n.idx, ()))):
            requires.add(n.idx)
    for h in fwd:
        if hz.hazard_kind(h) is None:
            continue
        chain: list[int] = []
        todo = [p for p in prod.get(h.idx, ()) if p in requires and p not in partner]
        branch: set[int] = set()
        ok = bool(todo)
        while todo and ok:
            v = todo.pop()
            if v in chain:
                continue
            if seg.get(v) != seg.get(h.idx) or by[v].op_short not in ZERO_GRAD_FORMULAS:
                ok = False
                break
            chain.append(v)
            for p in prod.get(v, ()):
                if p not in requires:
                    continue
                if p in partner:
                    branch.add(p)
                else:
                    todo.append(p)
        if not ok or not chain or len(branch) != 1:
            continue
        (b,) = branch
        target = next((kernel_of[i] for i in partner[b] if i in kernel_of and kernel_of[i].generated), None)
        if target is None:
            continue
        chain.sort()
        ops: list[str] = ["add"]  # accumulated into the branch point's gradient
        reads: set[int] = set()
        for v in reversed(chain):
            names, what = ZERO_GRAD_FORMULAS[by[v].op_short]
            ops.extend(names)
            if what == "self":
                reads.update(p for p in prod.get(v, ()) if p in chain)
            elif what == "result":
                reads.add(v)
        recomputed: set[int] = set()
        todo = [v for v in reads if roles.get(v) == POINT]  # reductions are saved, pointwise recomputed
        while todo:
            v = todo.pop()
            if v in recomputed:
                continue
            recomputed.add(v)
            todo.extend(p for p in prod.get(v, ()) if p in chain and roles.get(p) == POINT)
        target.extra.extend(o for o in dict.fromkeys(ops) if o not in target.extra)
        target.also.extend(v for v in sorted(recomputed) if v not in target.also)
