"""Kernel grouping: one phase's eager ops into the kernels Inductor would generate, in run order.

The rules follow ``torch/_inductor/scheduler.py`` and the CPU backend (see docs/analyses.md):

- views and allocations are free: no kernel;
- extern ops (mm/bmm/addmm/conv/SDPA/custom/fallback) are one kernel each and fence fusion:
  work that reads an extern's output runs in a later kernel;
- a consumer joins its producer's kernel when it reads what the producer wrote over the same
  iteration space: pointwise over the same numel, pointwise into a reduction as prologue (numel ==
  the reduction's input numel), pointwise after a reduction as epilogue (numel == the reduction's
  input or output numel); a reduction over leading dims (a bias-gradient ``sum(0)``) needs its
  input complete and runs in the next kernel;
- independent work that becomes ready at the same point lands in the same CPU kernel unless the
  two hold reductions of different shapes. The CPU backend itself puts every run of non-extern nodes
  into one function (``Scheduler._codegen`` flushes only at an extern call); the split stands for the
  order ``reorder_for_peak_memory`` (``torch/_inductor/memory.py``) picks when one of its topological
  sorts beats the graph's own order on estimated peak memory, which moves a bias-gradient ``sum``
  between a linear's two gradient ``mm``s (the transformer example). When the graph's order wins
  (the held-out GPT-2-like model) the ``sum`` shares the next kernel and the split over-predicts;
  kernels of consecutive stages with no extern call between them are one (``_join_consecutive_stages``);
  a pointwise node there only by that rule moves to the kernel that reads it (``_prefer_vertical``);
- sources (``bernoulli_`` masks, ``ones_like``) are computed inside their first consumer's kernel;
- an accumulating scatter Inductor generates rather than calls (``embedding_dense_backward``,
  ``index_put`` on a CPU with a floating accumulation and no boolean index) is a node of the kernel
  around it, iterating over its values (``fusion_rules.generated_scatter``); others are a kernel each;
- a graph-break hazard (``.item()``, ``nonzero``) ends every kernel: Dynamo splits the graph there;
  a value computed from parameters that leaves a graph there gets its zero-gradient backward fused
  into its branch point's backward kernel (``graph_break_outputs``);
- the column reductions of a parameter used twice and their gradient-accumulation ``add`` run as one
  node where the later one is ready (``_split_deferred_column_reductions``);
- at most 64 nodes per kernel.

On the ``cuda`` target the grouping asks :class:`gprof.analyses.triton_rules.TritonRules` instead and runs the
lowering passes of :mod:`gprof.analyses.triton_lowering` (inlining, recomputation, ``cat`` slices, pairwise
merging) and Triton's dependency order.

The whole-step prediction (Dynamo graphs, AOTAutograd's cut) and the unfused-chain estimate built
on these kernels are in :mod:`gprof.analyses.fusion`.
"""
from __future__ import annotations

from gprof.analyses.fusion_rules import (
    ALONE,
    BOUNDARY,
    COLUMN,
    FREE,
    POINT,
    ROW,
    FusionRules,
    Kernel,
    consumers_of,
    numel,
    signature,
    through_free,
)
from gprof.analyses.opclass import COLLECTIVE, EXTERN, OPTIMIZER, UNKNOWN, node_class
from gprof.analyses.triton_lowering import (
    concat_slices,
    inline_single_use,
    merge_producer_kernels,
    recompute_shared_pointwise,
    two_step_variance_means,
    unfused_bias_adds,
)
from gprof.analyses.triton_rules import after_dependencies
from gprof.graph.model import Node

MAX_FUSED_NODES = 64


def _addmm_folds(nodes: list[Node], roles: dict[int, str], producers: dict[int, list[int]],
                 consumers: dict[int, list[int]], seg: dict[int, int], unfused_before_pointwise: bool) -> dict[int, int]:
    """Adds Inductor folds into a matmul: ``{add: mm}``. Its post-grad pattern ``addmm``
    (``torch/_inductor/fx_passes/post_grad.py``) rewrites ``add(mm(a, b), c)`` into the extern call
    ``addmm(c, a, b)`` when ``c`` has the mm's dtype and expands to its 2-D shape and the mm result
    has no other user (a gradient accumulated over two uses of a weight is the common case). On a GPU
    device (``unfused_before_pointwise``) it keeps them apart when every user of the sum is pointwise
    (``should_prefer_unfused_addmm``, which is False off a GPU); a sum nothing in the graph reads is a
    graph output, not a pointwise use.
    A view between the two (an mm result reshaped to 3-D) is not matched."""
    by = {n.idx: n for n in nodes}
    out: dict[int, int] = {}
    for n in nodes:
        if n.op_short != "add" or roles[n.idx] != POINT or len(n.inputs) != 2 or not n.outputs:
            continue
        mms = [p for p in producers.get(n.idx, ()) if p in by and by[p].op_short == "mm" and seg[p] == seg[n.idx]
               and consumers.get(p) == [n.idx] and p not in out.values()]
        if not mms:
            continue
        mm = by[max(mms)]
        out_t, mm_t = n.outputs[0], mm.outputs[0] if mm.outputs else None
        if mm_t is None or len(mm_t.shape) != 2 or tuple(out_t.shape) != tuple(mm_t.shape):
            continue
        if any(t.dtype != mm_t.dtype for t in n.inputs):
            continue
        users = consumers.get(n.idx, ())
        if unfused_before_pointwise and users and all(roles.get(c) == POINT for c in users):
            continue
        out[n.idx] = mm.idx
    return out


def predict_phase(nodes: list[Node], graph_producers: dict[int, list[int]], node_roles: dict[int, str],
                  segment_of: dict[int, int] | None = None,
                  eager: set[int] | frozenset[int] = frozenset(), rules: FusionRules | None = None,
                  uses: dict[int, int] | None = None) -> list[Kernel]:
    """Kernels of one phase, in order; ``nodes`` are that phase's nodes in op order, ``node_roles``
    the step's roles (computed once per step), ``segment_of`` the Dynamo graph of each node,
    ``eager`` the nodes that stay outside every graph, ``rules`` the target's (default: C++) and
    ``uses`` how many nodes of the whole step read each node (default: this phase's readers)."""
    rules = rules or FusionRules()
    rules = rules.for_phase(nodes)  # (Triton: the layout its convolutions get, ``triton_rules.channels_last``)
    segment_of = segment_of or {}
    idx_in = {n.idx: n for n in nodes}
    roles = {n.idx: node_roles[n.idx] for n in nodes}  # this phase's only: others are not looked through
    producers = through_free(nodes, roles, graph_producers)
    consumers = consumers_of(producers)
    seg = {n.idx: segment_of.get(n.idx, 0) for n in nodes}
    for n in nodes:  # the backward of an op that breaks the graph runs eagerly too
        if n.idx in eager and roles[n.idx] != FREE:
            roles[n.idx] = BOUNDARY
    folded = _addmm_folds(nodes, roles, producers, consumers, seg, rules.unfused_addmm_before_pointwise)
    for a in folded:
        roles[a] = BOUNDARY
    stage: dict[int, int | None] = {}
    for n in nodes:
        r = roles[n.idx]
        if r == FREE:
            continue
        s: int | None = None
        # a node that reads nothing computed in this graph (a random mask, a copy of an input, a
        # buffer update) floats to its first consumer's kernel, or the last one
        reads_data = False
        for p in producers.get(n.idx, ()):
            rp = roles.get(p)
            if rp is None or seg[p] != seg[n.idx]:
                reads_data = True
                continue
            sp = stage.get(p)
            if folded.get(n.idx) == p:
                cand = sp or 0  # the add is the mm's epilogue
            elif rp in (BOUNDARY, ALONE):
                cand = (sp or 0) + 1
            elif sp is None:
                continue
            else:
                reads_data = True
                cand = sp if r in (BOUNDARY, ALONE) or rules.compatible(idx_in[p], rp, n, r) else sp + 1
            s = cand if s is None else max(s, cand)
        if s is None and (reads_data or r in (BOUNDARY, ALONE)):
            s = 0
        stage[n.idx] = s
    # sources take the stage of their first consumer (or the last stage when nothing reads them)
    last: dict[int, int] = {}
    for i, v in stage.items():
        if v is not None:
            last[seg[i]] = max(last.get(seg[i], 0), v)
    for n in reversed(nodes):
        if roles[n.idx] == FREE or stage[n.idx] is not None:
            continue
        r = roles[n.idx]
        cons = [sc - (0 if roles[c] in (BOUNDARY, ALONE) or rules.compatible(n, r, idx_in[c], roles[c]) else 1)
                for c in consumers.get(n.idx, ()) if (sc := stage.get(c)) is not None and seg[c] == seg[n.idx]]
        stage[n.idx] = min(cons) if cons else last.get(seg[n.idx], 0)
    # every node that computes has its stage now
    placed = {i: v for i, v in stage.items() if v is not None}
    # one kernel per (graph, stage, reduction shape); externs stay alone
    kernels: list[Kernel] = []
    open_at: dict[tuple[int, int], list[Kernel]] = {}
    kernel_of: dict[int, Kernel] = {}
    beside: dict[int, tuple[Kernel, Kernel]] = {}  # id of an apart kernel -> (it, the kernel it runs after)
    for n in nodes:
        r = roles[n.idx]
        if r == FREE:
            continue
        cls = node_class(n)
        if r in (BOUNDARY, ALONE):
            if n.idx in folded and folded[n.idx] in kernel_of:
                kernel_of[folded[n.idx]].nodes.append(n.idx)
            elif r == ALONE or cls == EXTERN or n.idx in eager:
                k = Kernel(n.phase, [n.idx], generated=n.idx not in eager and cls not in (
                    EXTERN, COLLECTIVE, OPTIMIZER, UNKNOWN), at=(seg[n.idx], placed[n.idx]))
                kernels.append(k)
                kernel_of[n.idx] = k
            continue
        sig = signature(n, r)
        at = (seg[n.idx], placed[n.idx])
        open_here = open_at.setdefault(at, [])
        mine = [kernel_of[p] for p in producers.get(n.idx, ()) if p in kernel_of]
        reads = set(producers.get(n.idx, ()))
        # a producer's kernel at this stage takes it (vertical fusion, checked by compatible);
        # otherwise any kernel of the stage it may share (horizontal)
        before, after = rules.extra_kernels(n, r)
        target = None if before else next(
            (k for vertical, ks in ((True, [k for k in mine if k in open_here]), (False, open_here)) for k in ks
             if rules.joins(k, n, r, vertical, [(idx_in[i], roles[i]) for i in k.nodes if i in idx_in],
                            vertical or any(reads.intersection(producers.get(i, ())) for i in k.nodes))), None)
        for note in before:  # e.g. a batch norm's statistics, computed before its pointwise part
            kernels.append(Kernel(n.phase, [], generated=True, at=at, note=note, also=[n.idx]))
        if target is None:
            target = Kernel(n.phase, [], generated=True, at=at)
            kernels.append(target)
            open_here.append(target)
        target.nodes.append(n.idx)
        kernel_of[n.idx] = target
        if sig is not None:
            target.reductions.add(sig)
        if len(target.nodes) >= MAX_FUSED_NODES or after:
            open_here.remove(target)
        for note in after:  # e.g. the second stage of a split reduction
            kernels.append(Kernel(n.phase, [], generated=True, at=at, note=note, also=[n.idx]))
        for note in rules.apart_kernels(n, r):  # e.g. a layer norm backward's column part (Triton)
            k = Kernel(n.phase, [], generated=True, at=at, note=note, also=[n.idx])
            kernels.append(k)
            beside[id(k)] = (k, target)
    _prefer_vertical(nodes, roles, producers, consumers, kernels, kernel_of)
    if rules.inlines_single_use:  # Triton; ``concat_realizes_inputs``: on a CPU device (the check on this machine)
        cpu_device = rules.concat_realizes_inputs
        inline_single_use(nodes, roles, consumers, seg, uses, kernels, kernel_of, cpu_device)
        recompute_shared_pointwise(nodes, roles, producers, consumers, seg, uses, kernels, kernel_of, cpu_device)
        if cpu_device:
            concat_slices(nodes, roles, producers, kernels, kernel_of)
        merge_producer_kernels(nodes, roles, producers, kernels, kernel_of, rules)
        if cpu_device:
            two_step_variance_means(nodes, roles, producers, kernels, kernel_of)
        if rules.unfused_addmm_before_pointwise:
            unfused_bias_adds(nodes, roles, consumers, seg, uses, kernel_of)
    _split_deferred_column_reductions(nodes, roles, producers, seg, placed, kernels, kernel_of,
                                      not rules.joins_stages, beside)
    # run order: graph by graph (as first met), stage by stage, a stage's generated kernel before
    # the externs that read it
    first_seen: dict[int, int] = {}
    for i, n in enumerate(nodes):
        first_seen.setdefault(seg[n.idx], i)
    # (within a stage by earliest member, ``min_order``: a split-off kernel also counts the nodes in ``also``)
    alive = {id(k) for k in kernels}  # (list.sort empties the list while it sorts)

    def order(k: Kernel) -> tuple:  # an apart kernel right after the kernel it runs beside
        held, base = beside.get(id(k), (None, k))
        base = base if held is k and id(base) in alive else k
        return (first_seen.get(base.at[0], 0), base.at[1], not base.generated, min(base.nodes + base.also),
                base is not k)

    kernels.sort(key=order)
    if rules.joins_stages:
        _join_consecutive_stages(kernels)
    else:
        after_dependencies(kernels, producers, kernel_of, beside)
    convs = [n for n in nodes if n.phase == "forward" and n.op_short == "convolution" and len(n.inputs[0].shape) == 4]
    # Inductor's layout optimisation converts the conv input and weights to channels-last up front:
    # one kernel group on the CPU, a kernel per tensor (the first input and each weight) on Triton,
    # none on a GPU when ``decide_layout_opt`` keeps the layout (``conversion_kernels``)
    kernels[:0] = [Kernel("forward", [], generated=True, note="channels-last conversion for convolutions")
                   for _ in range(rules.conversion_kernels(convs))]
    return kernels


def _join_consecutive_stages(kernels: list[Kernel]) -> None:
    """Generated kernels of consecutive stages of one graph with no extern call between them in run
    order are one CPU kernel. The CPU backend ends a kernel only at an extern call (``Scheduler._codegen``
    calls ``flush()`` when ``node.is_extern()``; ``CppScheduling`` adds every other node to its open kernel
    group), so a node that cannot fuse with its producer (a column ``sum`` over what the producer wrote)
    still shares that function when nothing else is emitted between them: the position-embedding
    gradient's batch ``sum`` and the scatter after it, in the kernel of the last layer-norm backward.
    Kernels of the same stage kept apart by their reduction shapes are left apart (see ``fits``)."""
    out: list[Kernel] = []
    for k in kernels:
        prev = out[-1] if out else None
        if (prev is not None and prev.generated and k.generated and not prev.note and not k.note
                and prev.nodes and k.nodes and prev.at[0] == k.at[0] and prev.at[1] < k.at[1]):
            prev.nodes = sorted(prev.nodes + k.nodes)
            prev.also.extend(i for i in k.also if i not in prev.also)
            prev.extra.extend(o for o in k.extra if o not in prev.extra)
            prev.reductions |= k.reductions
            prev.at = k.at  # the next stage joins only if it directly follows this one's last stage
            continue
        out.append(k)
    kernels[:] = out


def _prefer_vertical(nodes: list[Node], roles: dict[int, str], producers: dict[int, list[int]],
                     consumers: dict[int, list[int]], kernels: list[Kernel], kernel_of: dict[int, Kernel]) -> None:
    """A pointwise node that joined a kernel only horizontally (it reads nothing that kernel computes
    and nothing there reads it) moves to the kernel of the same stage that reads it. Inductor fuses the
    pair of nodes that shares the most memory first (``Scheduler.score_fusion`` /
    ``score_fusion_memory``): a residual gradient ``add`` fuses into the layer-norm backward that reads
    it (a prologue, ``COMPATIBLE_REDUCTION``), not into an unrelated bias-gradient ``sum`` that happened
    to become ready at the same point."""
    for n in nodes:
        if roles.get(n.idx) != POINT or n.idx not in kernel_of:
            continue
        k = kernel_of[n.idx]
        if not k.generated:
            continue
        here = set(k.nodes)
        if any(p in here for p in producers.get(n.idx, ())) or any(c in here for c in consumers.get(n.idx, ())):
            continue
        readers = {id(kernel_of[c]): kernel_of[c] for c in consumers.get(n.idx, ()) if c in kernel_of}
        if len(readers) != 1:
            continue
        (k2,) = readers.values()
        if k2 is k or not k2.generated or k2.at != k.at:
            continue
        k.nodes.remove(n.idx)
        k2.nodes = sorted([*k2.nodes, n.idx])
        kernel_of[n.idx] = k2
    kernels[:] = [k for k in kernels if k.nodes or k.note]


def _split_deferred_column_reductions(nodes: list[Node], roles: dict[int, str], producers: dict[int, list[int]],
                                      seg: dict[int, int], stage: dict[int, int], kernels: list[Kernel],
                                      kernel_of: dict[int, Kernel], apart: bool = False,
                                      beside: dict[int, tuple[Kernel, Kernel]] | None = None) -> None:
    """Where Inductor runs the column reductions of a parameter used by two calls (a block run twice).

    Its gradient is ``add(g_later, g_earlier)`` of two column reductions over the rows: a bias
    gradient ``sum(0)``, or layer norm's weight and bias gradients, which the decomposition
    (``torch/_decomp/decompositions.py`` ``native_layer_norm_backward``) computes apart from the row
    reductions of the input gradient. The two reductions have the same ranges and fuse
    (``CppScheduling._why_fuse_nodes``: ``SAME_VARS_REDUCE``), and the accumulation ``add`` joins them
    over their shared outer loop (``CppScheduling.can_fuse_vertical_outer_loop``). That one fused node
    runs once *both* are ready, not with the earlier call's backward. ``Scheduler.fuse_nodes`` orders
    fused nodes by ``min_order`` (their earliest member) and ``topological_sort_schedule`` emits each
    right after its dependencies; the CPU backend ends a kernel at every extern call
    (``Scheduler.codegen``: ``flush()`` when ``node.is_extern()``), otherwise consecutive nodes share a
    kernel. So the node joins the kernel that computes its last input:

    - a ``sum`` over leading dims: the kernel of the value it sums (not the next kernel, where an
      unshared bias gradient lands after its call's matmuls);
    - a normalisation backward's column part: it reads the gradient coming out of an extern (the
      input-gradient ``mm``) and is emitted right after it; when another extern it does not need sits
      between the earlier contribution and the rest of the kernel in op order (the earlier call's
      weight-gradient ``mm``), the adds and both column parts form a kernel of their own
      (``Kernel.also``: the two normalisation backwards), else they join that kernel.

    With ``apart`` (Triton: ``FusionRules.apart_kernels`` gives each normalisation's column part a
    kernel of its own) the fused node is always a kernel: ``SIMDScheduling.codegen_node`` emits one
    kernel per fused node, and an outer reduction fuses with no row reduction or full-size pointwise
    node (``SIMDScheduling.can_fuse``); it replaces the two calls' own column kernels (listed in
    ``beside``). Two bias sums and their ``add`` are likewise one kernel (same group, the ``add`` an
    epilogue)."""
    beside = beside or {}
    by = {n.idx: n for n in nodes}
    ancestors: dict[int, set[int]] = {}
    for n in nodes:  # op order is a topological order
        acc: set[int] = set()
        for p in producers.get(n.idx, ()):
            if p in by:
                acc.add(p)
                acc |= ancestors.get(p, set())
        ancestors[n.idx] = acc

    def column_part(p: int, a: Node) -> bool:  # a reads a column reduction that p computes
        pn = by[p]
        if roles[p] == COLUMN:
            return any(t.storage == pn.outputs[0].storage for t in a.inputs)
        if roles[p] != ROW or len(pn.outputs) < 2 or numel(pn.outputs[0].shape) != numel(pn.inputs[0].shape):
            return False
        extra = {t.storage for t in pn.outputs[1:]}
        return any(t.storage in extra for t in a.inputs)

    groups: dict[tuple[int, int], list[tuple[int, list[int]]]] = {}
    for a in nodes:
        if a.op_short != "add" or roles[a.idx] != POINT or a.phase != "backward" or a.idx not in stage:
            continue
        cols = sorted(p for p in producers.get(a.idx, ()) if p in by and seg[p] == seg[a.idx] and column_part(p, a))
        if len(cols) != 2 or {roles[c] for c in cols} not in ({ROW}, {COLUMN}):
            continue
        later = max(cols, key=lambda c: (stage[c], c))
        groups.setdefault((seg[a.idx], later), []).append((a.idx, cols))
    for (sg, later), adds in groups.items():
        sums = sorted({c for _, cs in adds for c in cs if roles[c] == COLUMN})
        if sums:  # the kernel of the value the later sum reads
            src = [p for p in producers.get(later, ()) if p in kernel_of and seg.get(p) == sg]
            home = kernel_of[max(src)] if src else None
        else:
            home = kernel_of.get(later)
        if home is None or not home.generated:
            continue
        members = {a for a, _ in adds} | set(sums)
        for m in members:  # out of the kernels the op-level rules put them in
            if m in kernel_of and m in kernel_of[m].nodes:
                kernel_of[m].nodes.remove(m)
        kernels[:] = [k for k in kernels if k.nodes or k.note]
        earliest = min(c for _, cs in adds for c in cs)
        rest = [i for i in home.nodes if i not in members]
        need = set().union(*(ancestors[m] for m in members))
        fused = {c for _, cs in adds for c in cs}
        if apart:  # the fused column reductions replace each normalisation's own column kernel
            kernels[:] = [k for k in kernels if not (beside.get(id(k), (None,))[0] is k and fused.intersection(k.also))]
        splitters = [] if sums or apart else [
            k for k in kernels if not k.generated and k.at[0] == sg and k.nodes
            and rest and earliest < k.nodes[0] < min(rest) and k.nodes[0] not in need]
        if not splitters and not apart:
            home.nodes = sorted(home.nodes + list(members))
            for m in members:
                kernel_of[m] = home
            continue
        k = Kernel(home.phase, sorted(members), generated=True, at=home.at, also=[] if sums else sorted(fused),
                   note=None if sums else "column reductions of a shared normalisation's backward, fused with "
                                          "their accumulation")
        kernels.append(k)
        for m in members:
            kernel_of[m] = k
