"""What Inductor's lowering stores and what it inlines, for the Triton target: the passes the grouping
(:mod:`gprof.analyses.fusion_grouping`) runs after it has placed every node, each following the
``torch/_inductor`` code it names. They are apart from :mod:`gprof.analyses.triton_rules`, which answers
the scheduler's per-pair questions, because they work on whole kernels after the fact: a value moves into
its readers' kernels, a ``cat`` is done by its inputs' kernels, a producer's kernel merges with its
reader's, a normalisation's mean splits off.
"""
from __future__ import annotations

from collections.abc import Callable

from gprof.analyses.fusion_rules import ALONE, BOUNDARY, FREE, POINT, ROW, FusionRules, Kernel, numel, squeeze_shape
from gprof.analyses.opclass import RANDOM, node_class
from gprof.graph.model import Node, TensorMeta


def inline_single_use(nodes: list[Node], roles: dict[int, str], consumers: dict[int, list[int]],
                       seg: dict[int, int], uses: dict[int, int] | None, kernels: list[Kernel],
                       kernel_of: dict[int, Kernel], concat: bool) -> None:
    """A pointwise node read by one pointwise node only runs in its reader's kernel, whatever their
    iteration spaces. Inductor lowers a pointwise op to an unrealised ``ir.Pointwise`` that its reader
    inlines through ``make_loader``; only a buffer with several users (``GraphLowering.run_node``:
    ``realize_hint`` when a user needs realised inputs, ``mark_reuse``), a graph output or an extern's
    input is realised (stored by a kernel). So the q/k/v gradients' transposes and scalings
    (slices) are computed inside the ``select_backward``/``add`` node that writes the packed
    in-projection gradient, one kernel, not one per slice. Only the Triton rules apply it
    (``FusionRules.inlines_single_use``): the C++ kernel group already joins such stages. With
    ``concat`` a ``cat`` reader inlines nothing (``concat_slices``). Nodes with several readers:
    ``recompute_shared_pointwise``."""
    by = {n.idx: n for n in nodes}
    for n in reversed(nodes):  # readers first, so that a chain moves as a whole
        k = kernel_of.get(n.idx)
        readers = [c for c in consumers.get(n.idx, ()) if seg.get(c) == seg[n.idx]]
        if roles[n.idx] != POINT or k is None or not k.generated or len(readers) != 1:
            continue
        if (uses or {}).get(n.idx, 1) != 1 or roles.get(readers[0]) != POINT or (
                concat and by[readers[0]].op_short == "cat"):
            continue
        k2 = kernel_of.get(readers[0])
        if k2 is None or k2 is k or not k2.generated:
            continue
        k.nodes.remove(n.idx)
        k2.nodes = sorted([*k2.nodes, n.idx])
        kernel_of[n.idx] = k2
    kernels[:] = [k for k in kernels if k.nodes or k.note]


#: ``config.realize_reads_threshold``: a pointwise node read by several users is realised (stored by a kernel of
#: its own) when it reads more buffers than this (``StorageBox.should_realize_on_reuse``)
REALIZE_READS_THRESHOLD = 4
#: ops ``should_realize_on_reuse`` realises on reuse on a CPU device whatever their reads (``heavy_ops``)
CPU_HEAVY_OPS = frozenset({"exp", "log", "log10", "log1p", "log2", "sigmoid", "tanh"})


def _inlined_cone(i: int, k: Kernel, producers: dict[int, list[int]], roles: dict[int, str]) -> list[int]:
    """``i`` and the pointwise members of its kernel that it reads, transitively: what its loader inlines."""
    members, cone, todo = set(k.nodes), {i}, [i]
    while todo:
        for p in producers.get(todo.pop(), ()):
            if p in members and p not in cone and roles.get(p) == POINT:
                cone.add(p)
                todo.append(p)
    return sorted(cone)


def recompute_shared_pointwise(nodes: list[Node], roles: dict[int, str], producers: dict[int, list[int]],
                               consumers: dict[int, list[int]], seg: dict[int, int], uses: dict[int, int] | None,
                               kernels: list[Kernel], kernel_of: dict[int, Kernel], cpu_device: bool) -> None:
    """A pointwise node read by several nodes of its graph is recomputed in each reader's kernel unless
    something realises it. ``GraphLowering.run_node`` calls ``StorageBox.mark_reuse(len(n.users))``, which
    realises a reused ``ir.Pointwise`` only when ``should_realize_on_reuse`` says so: more than
    ``realize_reads_threshold`` (4) buffers read, a large inner function or, on a CPU device, a heavy op
    (``exp``, ``log*``, ``sigmoid``, ``tanh``); a graph output (a value saved for the backward) is realised.
    Otherwise each reader's loader inlines it (``make_loader``) until an extern call needs it as a buffer
    (``ExternKernel.realize_input``, e.g. a ``bmm`` reading a slice of it): readers lowered before that
    recompute it (its work is listed in their kernels' ``Kernel.also``), later ones load the buffer; with no
    such reader it has no kernel of its own. In the transformer example the packed in-projection's
    ``add``+``clone`` is recomputed by q's and k's scaling ``mul`` and stored for v's ``bmm``: three kernels.

    Readers of different slices of it (each reads fewer elements than it holds: ``select``/``split`` of a
    packed tensor) share no buffer access: they read its inputs, or its buffer, at other offsets, so their
    ``MemoryDep`` differ, ``Scheduler.score_fusion_memory`` is 0 and ``InductorChoices.can_fuse`` refuses the
    horizontal fusion (\"no shared data\"); such readers that the grouping put in one kernel are split apart."""
    by = {n.idx: n for n in nodes}
    changed = False
    for n in nodes:
        k = kernel_of.get(n.idx)
        if roles.get(n.idx) != POINT or k is None or not k.generated or k.note or n.idx not in k.nodes:
            continue
        readers = [c for c in consumers.get(n.idx, ()) if seg.get(c) == seg[n.idx] and c in by]
        if len(readers) < 2:
            continue  # one reader: inline_single_use
        out_numel = numel(n.outputs[0].shape) if n.outputs else 0
        slices = {c for c in readers if any(t.storage == n.outputs[0].storage and numel(t.shape) < out_numel
                                            for t in by[c].inputs)}
        if (uses or {}).get(n.idx, len(readers)) != len(readers) and len(slices) < len(readers):
            # read in another phase: saved for it, a graph output, which ``run_node`` realises when it lowers the
            # node (``user.op == "output"``); unless only slices of it are read, then what is saved is a view of a
            # slice, realised with the graph's outputs, after its readers here
            continue
        cone = _inlined_cone(n.idx, k, producers, roles)
        written = {by[i].outputs[0].storage for i in cone if by[i].outputs}
        reads = {t.storage for i in cone for t in by[i].inputs} - written
        if len(reads) > REALIZE_READS_THRESHOLD or (cpu_device and any(by[i].op_short in CPU_HEAVY_OPS for i in cone)):
            continue
        fence = next((c for c in readers if roles.get(c) in (ALONE, BOUNDARY) or kernel_of.get(c) is None
                      or not kernel_of[c].generated), None)
        inlining = [c for c in readers if fence is None or c < fence]
        if not inlining or any(kernel_of.get(c) is k for c in readers):
            continue  # a reader in its own kernel: computed there anyway
        slices &= set(inlining)
        if fence is None:
            # nothing realises it: its kernel gives up the cone, the first reader's kernel computes it
            rest = [i for i in k.nodes if i not in cone]
            if any(p in cone for i in rest for p in producers.get(i, ())):
                continue
            k.nodes = rest
            first = kernel_of[inlining[0]]
            first.nodes = sorted(first.nodes + cone)
            for i in cone:
                kernel_of[i] = first
            others = inlining[1:]
        else:  # stored when the extern call is lowered (``realize_input``): after the readers that inlined it
            others = inlining
            if (kf := kernel_of.get(fence)) is not None:
                k.at = max(k.at, kf.at)
        for c in others:
            kc = kernel_of[c]
            kc.also.extend(i for i in cone if i not in kc.also and i not in kc.nodes)
        changed = True
        # readers of different slices that the grouping put in one kernel: one kernel each
        for kc in {id(kernel_of[c]): kernel_of[c] for c in slices}.values():
            mine = [c for c in slices if kernel_of[c] is kc and c not in cone]
            for c in mine[1:]:
                moved = _dependants(c, kc, consumers)
                if any(p in kc.nodes and p not in moved and p not in cone for i in moved
                       for p in producers.get(i, ())):
                    continue  # it reads other work of that kernel: a vertical fusion keeps it there
                kc.nodes = [i for i in kc.nodes if i not in moved]
                split = Kernel(kc.phase, sorted(moved), generated=True, at=kc.at,
                               also=list(kc.also) + [i for i in cone if i in kc.nodes])  # (it recomputes it too)
                for i in moved:
                    kernel_of[i] = split
                kernels.insert(kernels.index(kc) + 1, split)
    if changed:
        kernels[:] = [k for k in kernels if k.nodes or k.note]


def _dependants(i: int, k: Kernel, consumers: dict[int, list[int]]) -> set[int]:
    """``i`` and the members of ``k`` that read it, transitively."""
    members, out, todo = set(k.nodes), {i}, [i]
    while todo:
        for c in consumers.get(todo.pop(), ()):
            if c in members and c not in out:
                out.add(c)
                todo.append(c)
    return out


def concat_slices(nodes: list[Node], roles: dict[int, str], producers: dict[int, list[int]],
                   kernels: list[Kernel], kernel_of: dict[int, Kernel]) -> None:
    """``ir.ConcatKernel.create`` gives ``cat``'s output a buffer whose slices its inputs are realised
    into (``NonOwningLayout``): a pointwise input's kernel writes its slice, so it does the ``cat``'s
    work for it (``Kernel.also``), and the ``cat``'s own kernel only copies the inputs no kernel of
    this graph computes (an extern's output); with none, it has no kernel."""
    for n in nodes:
        k = kernel_of.get(n.idx)
        if n.op_short != "cat" or roles.get(n.idx) != POINT or k is None or not k.generated:
            continue
        writers = {id(kernel_of[p]): kernel_of[p] for p in producers.get(n.idx, ())
                   if roles.get(p) == POINT and p in kernel_of and kernel_of[p].generated and kernel_of[p] is not k}
        for w in writers.values():
            if n.idx not in w.also:
                w.also.append(n.idx)
        if writers and len(writers) >= len(n.inputs) and k.nodes == [n.idx]:
            k.nodes.remove(n.idx)
    kernels[:] = [k for k in kernels if k.nodes or k.note]


def merge_producer_kernels(nodes: list[Node], roles: dict[int, str], producers: dict[int, list[int]],
                            kernels: list[Kernel], kernel_of: dict[int, Kernel], rules: FusionRules) -> None:
    """A node joins one producer's kernel; another producer's kernel of the same stage then fuses with
    it too when the rules admit the pair (``FusionRules.merges``): the scheduler fuses pairs until no
    pair is left, so a dropout mask computed from nothing in the graph ends in the kernel of the
    softmax whose output it multiplies, not in a kernel of its own. A node whose own kernel waits for
    kernels before it (a batch norm backward's statistics, ``FusionRules.extra_kernels``) takes no
    producer: those kernels read the producer, so the pair would be a cycle
    (``Scheduler.will_fusion_create_cycle``)."""
    by = {n.idx: n for n in nodes}
    for n in nodes:
        k = kernel_of.get(n.idx)
        if k is None or not k.generated or k.note or rules.extra_kernels(n, roles[n.idx])[0]:
            continue
        for p in producers.get(n.idx, ()):
            kp = kernel_of.get(p)
            if kp is None or kp is k or not kp.generated or kp.note or kp.at != k.at or not kp.nodes:
                continue
            members = k.nodes + kp.nodes
            if any(roles[i] in (ALONE, BOUNDARY) for i in members) or not rules.merges(
                    [(by[i], roles[i]) for i in k.nodes], [(by[i], roles[i]) for i in kp.nodes]):
                continue  # (a fallback call, e.g. a scatter, is a kernel of its own)
            k.nodes = sorted(k.nodes + kp.nodes)
            k.also.extend(i for i in kp.also if i not in k.also)
            for i in kp.nodes:
                kernel_of[i] = k
            kp.nodes = []
    kernels[:] = [k for k in kernels if k.nodes or k.note]


#: ``config.cpp.use_two_step_variance_threshold``: on a CPU device ``var_mean`` over at most this many elements
#: is lowered as a mean and then a centred sum of squares (``lowering.use_two_step_variance``)
TWO_STEP_VARIANCE_THRESHOLD = 1024
#: ops whose statistics Inductor computes with ``var_mean`` over the last dim (decompositions)
VAR_MEAN_OPS = frozenset({"native_layer_norm", "var_mean", "var", "std", "std_mean"})
#: views that reorder dims: a tensor read through one is laid out in another order than its shape
PERMUTING_VIEWS = frozenset({"transpose", "permute", "t", "swapaxes", "swapdims", "movedim", "numpy_T", "mT"})
#: allocations that take their layout from their input (``memory_format=torch.preserve_format``)
LIKE_ALLOCATIONS = frozenset({"empty_like", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like"})


def _permuted_layouts(nodes: list[Node], roles: dict[int, str]) -> Callable[[TensorMeta], bool]:
    """A function telling whether a tensor a node reads is laid out in another order than its shape: read
    through a view that reorders dims (the graph keeps views as free nodes; a view's output is matched
    by storage and shape), or a fresh ``*_like`` allocation of such a tensor (``preserve_format``, as a
    dropout mask of a transposed input is)."""
    view_of: dict[tuple[int, tuple[int, ...]], Node] = {}
    alloc_of: dict[int, Node] = {}
    for n in nodes:
        if roles.get(n.idx) != FREE or not n.outputs or not n.inputs:
            continue
        if n.op_short in LIKE_ALLOCATIONS:
            alloc_of.setdefault(n.outputs[0].storage, n)
        else:
            view_of.setdefault((n.outputs[0].storage, tuple(n.outputs[0].shape)), n)

    def permuted(t: TensorMeta, depth: int = 0) -> bool:
        if depth > 16:
            return False
        v = view_of.get((t.storage, tuple(t.shape)))
        if v is not None and v.inputs[0] != t:
            if v.op_short in PERMUTING_VIEWS and squeeze_shape(tuple(v.inputs[0].shape)) != squeeze_shape(tuple(t.shape)):
                return True
            return permuted(v.inputs[0], depth + 1)
        a = alloc_of.get(t.storage)
        return a is not None and permuted(a.inputs[0], depth + 1)

    return permuted


def two_step_variance_means(nodes: list[Node], roles: dict[int, str], producers: dict[int, list[int]],
                            kernels: list[Kernel], kernel_of: dict[int, Kernel]) -> None:
    """On a CPU device a normalisation's mean is a kernel of its own when most of what its statistics read is
    laid out in another order (the check on this machine only; not on a GPU).

    ``lowering.var_mean`` takes ``var_mean_sum_`` when ``use_two_step_variance`` holds, which on a device of
    type ``cpu`` is a reduction over at most ``config.cpp.use_two_step_variance_threshold`` (1,024) elements
    (on CUDA only for fp16/bf16, else Welford: one reduction): a ``sum`` for the mean, realised, then the
    centred sum of squares and the normalisation, which read the mean. The mean's buffer is laid out in the
    loop order most of its reads prefer (``ComputedBuffer.get_fill_order``, ``pick_loop_order``), the rest
    iterate in the output's own order; when the two differ the mean's ``MemoryDep`` matches none of its
    readers' (``Scheduler.score_fusion_memory`` 0, \"no shared data\") and a CPU node's loops are never reordered
    to match (``Scheduler.shared_data_after_reordering_loop`` returns -1 for CPU nodes). So the prologue and
    the mean run in a kernel before the normalisation's (which recomputes the prologue from what that kernel
    stored, a dropout mask). The transformer example's first layer norm reads ``x``, the attention output
    through ``transpose(0, 1)`` and a dropout mask allocated like that transposed view: two of three."""
    by = {n.idx: n for n in nodes}
    permuted = _permuted_layouts(nodes, roles)
    for n in nodes:
        k = kernel_of.get(n.idx)
        if (n.op_short not in VAR_MEAN_OPS or roles.get(n.idx) != ROW or k is None or not k.generated or k.note
                or not n.inputs or not n.inputs[0].shape or n.inputs[0].shape[-1] > TWO_STEP_VARIANCE_THRESHOLD):
            continue
        size = numel(n.inputs[0].shape)
        cone = set(_inlined_cone(n.idx, k, producers, roles)) - {n.idx}  # the pointwise prologue the statistics inline
        random = {by[i].outputs[0].storage for i in cone if by[i].outputs and node_class(by[i]) == RANDOM}
        written = {by[i].outputs[0].storage for i in cone if by[i].outputs} - random
        layouts: dict[int, bool] = {}  # buffers the mean's sum reads (a random mask is stored) -> permuted
        for i in [*sorted(cone), n.idx]:
            for t in by[i].inputs[:1] if i == n.idx else by[i].inputs:
                if t.storage not in written and numel(t.shape) == size:  # (broadcast reads have no say)
                    layouts[t.storage] = layouts.get(t.storage, False) or permuted(t)
        votes = sum(layouts.values())
        if not cone or votes * 2 <= len(layouts):
            continue
        rest = [i for i in k.nodes if i not in cone]
        mean = Kernel(k.phase, sorted(cone), generated=True, at=k.at, also=[n.idx])
        k.nodes = rest
        k.also.extend(i for i in sorted(cone) if i not in k.also and by[i].outputs
                      and by[i].outputs[0].storage not in random)
        for i in cone:
            kernel_of[i] = mean
        kernels.insert(kernels.index(k), mean)


def unfused_bias_adds(nodes: list[Node], roles: dict[int, str], consumers: dict[int, list[int]],
                      seg: dict[int, int], uses: dict[int, int] | None, kernel_of: dict[int, Kernel]) -> None:
    """On a GPU an ``addmm`` whose every user is pointwise becomes ``mm`` and a bias add
    (``torch/_inductor/fx_passes/post_grad.py``: ``unfuse_bias_add_to_pointwise`` when
    ``should_prefer_unfused_addmm``, False off a GPU), and the add runs in its users' kernel: ``Linear`` +
    ``ReLU`` is an ``mm`` call and one ``triton_poi_fused_addmm_relu`` kernel. The kernel count is unchanged
    (the mm stays an extern call); the users' kernels also do part of the addmm's work (``Kernel.also``).
    A value read in another phase (saved for the backward) is a graph output, not a pointwise use."""
    for n in nodes:
        if n.op_short != "addmm":
            continue
        users = [c for c in consumers.get(n.idx, ()) if seg.get(c) == seg.get(n.idx)]
        if not users or (uses or {}).get(n.idx, len(users)) != len(users) or any(roles.get(c) != POINT for c in users):
            continue
        for c in users:
            k = kernel_of.get(c)
            if k is not None and k.generated and n.idx not in k.also:
                k.also.append(n.idx)

