"""Inductor's Triton (CUDA) scheduling rules, for fusion prediction re-targeted to a GPU.

The C++ backend and the Triton backend share ``Scheduler.fuse_nodes`` but differ in what becomes one
kernel, and the grouping in :mod:`gprof.analyses.fusion` asks a :class:`FusionRules` object for each
difference. Here, each rule with the function inside ``torch/_inductor`` it follows:

- **A kernel is one fused scheduler node.** ``SIMDScheduling.codegen_node`` generates one kernel per
  (fused) node; there is no kernel group that appends later nodes until an extern call, as
  ``CppScheduling``'s ``kernel_group`` does (``Scheduler._codegen`` + ``CppScheduling.flush``). So
  consecutive stages are not joined, and independent work shares a kernel only when the scheduler
  fuses it: horizontally, when the two read a common buffer over the same iteration space
  (``Scheduler.get_possible_fusions`` pairs nodes by shared buffer names).
- **Iteration groups.** Every node has a group ``(numel, rnumel)`` (``SIMDScheduling.group_fn``) and
  ``SIMDScheduling.can_fuse`` admits: two reductions of the same group; two pointwise nodes of the
  same numel; a pointwise node into a reduction when its numel is the reduction's ``numel * rnumel``
  (prologue) or ``numel`` (epilogue), unless the tiling is incompatible (``SIMDKernel.is_compatible``,
  ``tiling_prevents_reduction_fusion``): a reduction over leading dims (a bias gradient ``sum(0)``,
  batch norm's statistics, an *outer* reduction) walks its input in another order than the pointwise
  node that wrote it, so neither its producer nor a pointwise consumer over the full size fuses with it.
- **Split reductions.** A reduction with few outputs and a long reduction is computed in two kernels
  (``ir.Reduction.num_splits`` with ``InductorChoices.reduction_split_factor``): a partial reduction
  into ``split`` chunks per output, then a persistent reduction over the chunks. The decision reads the
  device's SM count, so the prediction takes it from the GPU named (:mod:`gprof.analyses.gpu_specs`).
- **A normalisation backward's column part is a kernel of its own.** ``native_layer_norm_backward``
  decomposes (``torch/_decomp/decompositions.py`` ``native_layer_norm_backward``) into row reductions
  over the normalised dim (the input gradient) and, when the weight or bias needs a gradient, column
  sums over the rows (``grad_weight``/``grad_bias``): reductions of group ``(cols, rows)``, which
  ``SIMDScheduling.can_fuse`` keeps apart from the row group ``(rows, cols)`` (the C++ backend runs
  both in one kernel group). The column kernel runs after the row kernel: the decomposition computes
  ``d_input`` first, and the scheduler keeps that order (``min_order``, then
  ``Scheduler.topological_sort_schedule``); ``reorder_for_peak_memory`` may move it first (the
  transformer example), which the prediction does not model. It splits like any outer reduction
  (``split_factor``). ``apart_kernels``; the fused column part of a normalisation used twice is
  ``fusion._split_deferred_column_reductions``'s kernel instead.
- **Inlining.** A pointwise node read by one pointwise node runs in its reader's kernel, whatever
  their sizes (``triton_rules.inline_single_use``: an unrealised ``ir.Pointwise`` is inlined by its reader).
  ``cat``'s inputs are the exception where the lowering picks ``ir.ConcatKernel.create`` (always on a
  CPU device, which the check on this machine is): each input is realised into its slice by a kernel
  of its own, which does the ``cat``'s work for that slice (``triton_rules.concat_slices``).
  A pointwise node read by several nodes is recomputed by each reader lowered before something stores
  it (``StorageBox.mark_reuse``: at most ``realize_reads_threshold`` buffers read, no heavy op on a CPU
  device; an extern reader stores it), and readers of different slices of it share no buffer access, so
  no horizontal fusion (``triton_rules.recompute_shared_pointwise``).
- **Two-step variance on a CPU device** (the check on this machine only): ``var_mean`` over at most 1,024
  elements is a mean and then a centred sum of squares (``lowering.use_two_step_variance``), and a CPU
  node's loops are never reordered to match a reader's, so a normalisation whose reads are mostly laid out
  in another order (read through a ``transpose``) computes its mean in a kernel of its own
  (``triton_rules.two_step_variance_means``).
- **Persistent reductions** (``triton.persistent_reductions``, ``triton_per_*``) keep a whole row in
  registers; they change a kernel's kind, not the number of kernels, and are not modelled further.
- **Mix-order reductions** (``MixOrderReduction.can_fuse``, CUDA only: both orders of one input with at
  least 5 Mi elements, 4,096 rows and twice as many rows as columns) fuse a normalisation backward's
  column reductions with its row reductions; they are not modelled (``mix_order`` below says when).
- **Templates.** Epilogue fusion into a GEMM template happens only with max-autotune
  (``config.max_autotune``/``max_autotune_gemm``, off by default: ``mm``/``addmm``/``bmm``/convolution
  are then ``extern_kernels`` calls, as on the CPU); the prediction keeps every matmul an extern.
- **What stays an extern** is the same on both backends (``torch/_inductor/lowering.py`` fallbacks and
  ``extern_kernels``), and a convolution's layout conversion to channels-last is one kernel per
  converted tensor (the input and each weight) rather than one kernel group.
"""
from __future__ import annotations

from dataclasses import dataclass

from gprof.analyses.fusion_rules import (
    ALONE,
    BOUNDARY,
    COLUMN,
    FREE,
    FULL,
    POINT,
    ROW,
    SCATTER_ADD,
    FusionRules,
    Kernel,
    numel,
    scatter_values,
    squeeze_shape,
)
from gprof.analyses.gpu_specs import GpuSpec
from gprof.analyses.opclass import RANDOM, node_class
from gprof.graph.model import Node

#: normalisations that reduce over every dim but the channel dim (outer reductions); Inductor computes
#: their statistics in reduction kernels of their own and the full-size output in a pointwise kernel
BATCH_NORMS = frozenset({"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_functional",
                         "_native_batch_norm_legit_no_training", "cudnn_batch_norm"})
#: their backwards: two channel reductions (the gradient's sum and its dot with the normalised input)
BATCH_NORM_BACKWARDS = frozenset({"native_batch_norm_backward", "batch_norm_backward", "cudnn_batch_norm_backward"})
#: normalisation backwards whose weight/bias gradients are column sums apart from the row part
LAYER_NORM_BACKWARDS = frozenset({"native_layer_norm_backward"})
#: losses that reduce over the target's elements (one gathered class per row), not over their input
GATHER_LOSSES = frozenset({"nll_loss_forward", "nll_loss2d_forward"})


@dataclass(frozen=True, slots=True)
class Shape:
    """A node's ``SIMDKernel`` group ``(numel, rnumel)`` (``SIMDScheduling.group_fn``), whether it
    reduces, and whether the reduction runs over leading dims (``ReductionHint.OUTER``)."""

    numel: int
    rnumel: int
    reduction: bool
    outer: bool


def shape(node: Node, r: str) -> Shape:
    out = numel(node.outputs[0].shape) if node.outputs else 0
    if r == SCATTER_ADD:
        return Shape(scatter_values(node), 1, False, False)
    if r not in (ROW, COLUMN, FULL) or not node.inputs or node.op_short in BATCH_NORMS | BATCH_NORM_BACKWARDS:
        return Shape(out, 1, False, False)  # a batch norm's own kernel is its pointwise part
    ni = numel(node.inputs[0].shape)
    if r == FULL:
        reduced = numel(node.inputs[1].shape) if node.op_short in GATHER_LOSSES and len(node.inputs) > 1 else ni
        return Shape(1, reduced, True, False)
    if out == ni:  # layer norm / softmax: per-row statistics over the last dim
        last = node.inputs[0].shape[-1] if node.inputs[0].shape else 1
        return Shape(ni // max(1, last), last, True, False)
    return Shape(out, ni // max(1, out), True, r == COLUMN)


def split_factor(numel_: int, rnumel: int, is_outer: bool, gpu: GpuSpec) -> int:
    """``ir.Reduction.num_splits`` with ``InductorChoices.reduction_split_factor``: how many chunks a
    reduction is split into (1: not split). Full reductions (``numel == 1``) split past 8,192 elements
    (524,288 from compute capability 10); others only with under ``num_sm * 64`` outputs."""
    warp, threads_per_sm, sms = 32, 2048, gpu.sm_count
    lo, hi = warp * sms * threads_per_sm, 512 * sms * threads_per_sm
    if numel_ != 1 and (rnumel <= 32 or numel_ >= sms * 2 * 32):
        return 1
    total = rnumel * numel_

    def closest(target: int, slack: int) -> int:
        divisors = [d for d in range(1, int(rnumel ** 0.5) + 1) if rnumel % d == 0]
        best = min(divisors + [rnumel // d for d in divisors], key=lambda d: abs(d - target))
        return best if abs(best - target) < slack else target

    if not is_outer or numel_ == 1:
        if numel_ >= 2 * sms or rnumel <= (524288 if gpu.compute_major >= 10 else 8192):
            return 1
        threads = warp * 8
        if total <= lo:
            size = warp
        elif total < hi:
            blocks = -(-(sms * threads_per_sm // (2 * threads)) // numel_)
            size = max(closest(-(-rnumel // (threads * blocks)), 30), warp)
        else:
            size = closest(512, 50)
        return -(-rnumel // (size * threads))
    xblocks = -(-numel_ // 128)
    if total < lo:
        size = warp
    elif total < hi:
        blocks = -(-(sms * threads_per_sm // (warp * 8)) // xblocks)
        size = max(closest(-(-rnumel // (4 * blocks)), 20), warp)
    else:
        size = closest(512, 50)
    return -(-rnumel // (4 * size))


def mix_order(rows: int, cols: int) -> bool:
    """Would ``MixOrderReduction.can_fuse`` fuse a row and a column reduction of one [rows, cols]
    input on a GPU (strict mode)? Not modelled; the prediction says so where it applies."""
    return rows * cols >= 5 * 2 ** 20 and rows >= 2 * cols and rows >= 4096


class TritonRules(FusionRules):
    """The Triton backend's answers to the grouping's questions (see the module docstring)."""

    target = "cuda"
    joins_stages = False
    layout_conversions_per_tensor = True
    inlines_single_use = True

    def __init__(self, gpu: GpuSpec) -> None:
        self.gpu = gpu
        # the ``cat`` lowering (``torch/_inductor/lowering.py``) returns a ``ConcatKernel`` on a CPU device;
        # on a GPU it takes ``pointwise_cat`` (inputs inlined) for up to ``max_pointwise_cat_inputs`` inputs
        self.concat_realizes_inputs = gpu.cpu_tensors
        self.unfused_addmm_before_pointwise = not gpu.cpu_tensors

    def compatible(self, p: Node, rp: str, c: Node, rc: str) -> bool:
        return can_fuse(shape(p, rp), shape(c, rc))

    def joins(self, k: Kernel, node: Node, r: str, vertical: bool, members: list[tuple[Node, str]],
              shares_input: bool) -> bool:
        """Only a scheduler fusion joins a kernel: the node reads what the kernel computes or a buffer
        a member reads, and may fuse with the kernel's group (``FusedSchedulerNode.group``: its
        reduction's when it holds one, prologue and epilogue nodes fitting around it)."""
        shapes = [shape(m, rm) for m, rm in members]
        group = next((s for s in shapes if s.reduction), shapes[0] if shapes else None)
        return shares_input and (group is None or can_fuse(group, shape(node, r)))

    def merges(self, a: list[tuple[Node, str]], b: list[tuple[Node, str]]) -> bool:
        """May two kernels, one computing what the other reads, be one fused node? ``Scheduler.fuse_nodes``
        repeats ``fuse_nodes_once`` over pairs of (fused) nodes sharing a buffer, so a producer fuses with
        its reader's fused node whenever ``SIMDScheduling.can_fuse`` admits the combined group: at most
        one reduction group, every other node fitting around it."""
        shapes = [shape(m, rm) for m, rm in a + b]
        reductions = {(s.numel, s.rnumel) for s in shapes if s.reduction}
        group = next((s for s in shapes if s.reduction), shapes[0] if shapes else None)
        return len(reductions) <= 1 and group is not None and all(can_fuse(group, s) for s in shapes)

    def extra_kernels(self, node: Node, r: str) -> tuple[list[str], list[str]]:
        """Kernels a node needs besides its own (before it, after it): a batch norm computes its
        channel statistics apart from its pointwise output (forward: one reduction, backward: two),
        and a split reduction adds the reduction over its chunks for each reduction split."""
        if node.op_short in BATCH_NORMS | BATCH_NORM_BACKWARDS and node.inputs and len(node.inputs[0].shape) > 1:
            channels = node.inputs[0].shape[1]
            rest = numel(node.inputs[0].shape) // max(1, channels)
            stages = 1 if node.op_short in BATCH_NORMS else 2
            split = split_factor(channels, rest, True, self.gpu) > 1
            return ["batch-norm statistics (an outer reduction: no pointwise tiling fits it)"] + [
                SECOND_STAGE] * (stages if split else 0), []
        s = shape(node, r)
        if s.reduction and split_factor(s.numel, s.rnumel, s.outer, self.gpu) > 1:
            return [], [SECOND_STAGE]
        return [], []


    def apart_kernels(self, node: Node, r: str) -> list[str]:
        """Kernels doing part of ``node``'s work beside its own kernel, emitted just after it, which
        leave the node free to fuse with its neighbours: a layer norm backward's column part (the
        weight and bias gradients) and, when that outer reduction splits, its second stage."""
        if node.op_short not in LAYER_NORM_BACKWARDS or len(node.outputs) < 2 or not node.inputs:
            return []
        cols = node.inputs[0].shape[-1] if node.inputs[0].shape else 1
        rows = numel(node.inputs[0].shape) // max(1, cols)
        return [COLUMN_PART] + [SECOND_STAGE] * (split_factor(cols, rows, True, self.gpu) > 1)


SECOND_STAGE = "second stage of a split reduction"
COLUMN_PART = "column part of a normalisation backward (weight/bias gradients)"


def can_fuse(a: Shape, b: Shape) -> bool:
    """``SIMDScheduling.can_fuse`` on two nodes' shapes (either order)."""
    if a.reduction and b.reduction:
        return (a.numel, a.rnumel) == (b.numel, b.rnumel)
    if not a.reduction and not b.reduction:
        return a.numel == b.numel
    point, red = (a, b) if b.reduction else (b, a)
    if point.numel == red.numel * red.rnumel:
        return not red.outer  # tiling_prevents_reduction_fusion: an outer reduction's order fits no pointwise tile
    return point.numel == red.numel


# passes over the grouped kernels that the Triton rules add (called by fusion.predict_phase)

def after_dependencies(kernels: list[Kernel], producers: dict[int, list[int]], kernel_of: dict[int, Kernel],
                        beside: dict[int, tuple[Kernel, Kernel]]) -> None:
    """Emit each kernel after the kernels it reads, keeping the sorted order otherwise (a stable
    topological sort). Inductor orders fused nodes by ``min_order`` and then
    ``Scheduler.topological_sort_schedule`` puts every node after its dependencies; the Triton backend
    emits one kernel per fused node in that order (``SIMDScheduling.codegen_node``), so a fused node
    whose earliest member is early but which reads a later kernel's output (the shared normalisation's
    column reductions read the residual gradient the later row kernel writes) runs after that kernel.
    A kernel without nodes of its own (``Kernel.also`` only) depends on what those nodes read, less the
    kernel it runs beside (``beside``: a column part inlines the pointwise prologue its row kernel
    computes, ``triton_red_fused_add_native_layer_norm_backward`` in the transformer example)."""
    def deps(k: Kernel) -> set[int]:
        held, base = beside.get(id(k), (None, k))
        skip = {id(k), id(base) if held is k else id(k)}
        reads = {p for i in (k.nodes or k.also) for p in producers.get(i, ())}
        return {id(kernel_of[p]) for p in reads if p in kernel_of} - skip

    alive = {id(k) for k in kernels}
    pending = [(k, deps(k) & alive) for k in kernels]
    done: set[int] = set()
    out: list[Kernel] = []
    while pending:
        i = next((i for i, (_, d) in enumerate(pending) if d <= done), 0)  # (a cycle: keep the sorted order)
        k, _ = pending.pop(i)
        out.append(k)
        done.add(id(k))
    kernels[:] = out


def inline_single_use(nodes: list[Node], roles: dict[int, str], consumers: dict[int, list[int]],
                       seg: dict[int, int], uses: dict[int, int] | None, kernels: list[Kernel],
                       kernel_of: dict[int, Kernel], concat: bool, cpu_device: bool | None = None) -> None:
    """A pointwise node read by one pointwise node only runs in its reader's kernel, whatever their
    iteration spaces. Inductor lowers a pointwise op to an unrealised ``ir.Pointwise`` that its reader
    inlines through ``make_loader``; only a buffer with several users (``GraphLowering.run_node``:
    ``realize_hint`` when a user needs realised inputs, ``mark_reuse``), a graph output or an extern's
    input is realised (stored by a kernel). So the q/k/v gradients' transposes and scalings
    (slices) are computed inside the ``select_backward``/``add`` node that writes the packed
    in-projection gradient, one kernel, not one per slice. Only the Triton rules apply it
    (``FusionRules.inlines_single_use``): the C++ kernel group already joins such stages. With
    ``concat`` a ``cat`` reader inlines nothing (``concat_slices``). Nodes with several readers follow
    (``recompute_shared_pointwise``; ``cpu_device`` defaults to ``concat``, which the grouping passes as
    ``GpuSpec.cpu_tensors``)."""
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
    # (the grouping passes ``concat`` as ``TritonRules.concat_realizes_inputs``, which is ``GpuSpec.cpu_tensors``)
    recompute_shared_pointwise(nodes, roles, consumers, seg, uses, kernels, kernel_of,
                               concat if cpu_device is None else cpu_device)


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


def recompute_shared_pointwise(nodes: list[Node], roles: dict[int, str], consumers: dict[int, list[int]],
                               seg: dict[int, int], uses: dict[int, int] | None, kernels: list[Kernel],
                               kernel_of: dict[int, Kernel], cpu_device: bool) -> None:
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
    producers: dict[int, list[int]] = {}
    for p, cs in consumers.items():
        for c in cs:
            producers.setdefault(c, []).append(p)
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
    if isinstance(rules, TritonRules) and rules.gpu.cpu_tensors:
        two_step_variance_means(nodes, roles, producers, kernels, kernel_of)


#: ``config.cpp.use_two_step_variance_threshold``: on a CPU device ``var_mean`` over at most this many elements
#: is lowered as a mean and then a centred sum of squares (``lowering.use_two_step_variance``)
TWO_STEP_VARIANCE_THRESHOLD = 1024
#: ops whose statistics Inductor computes with ``var_mean`` over the last dim (decompositions)
VAR_MEAN_OPS = frozenset({"native_layer_norm", "var_mean", "var", "std", "std_mean"})
#: views that reorder dims: a tensor read through one is laid out in another order than its shape
PERMUTING_VIEWS = frozenset({"transpose", "permute", "t", "swapaxes", "swapdims", "movedim", "numpy_T", "mT"})
#: allocations that take their layout from their input (``memory_format=torch.preserve_format``)
LIKE_ALLOCATIONS = frozenset({"empty_like", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like"})


def _permuted_layouts(nodes: list[Node], roles: dict[int, str]):
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

    def permuted(t, depth: int = 0) -> bool:
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
        members, cone, todo = set(k.nodes), set(), [n.idx]
        while todo:  # the pointwise prologue the statistics inline
            for p in producers.get(todo.pop(), ()):
                if p in members and p not in cone and roles.get(p) == POINT:
                    cone.add(p)
                    todo.append(p)
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
