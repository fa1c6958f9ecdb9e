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
  their sizes (``triton_lowering.inline_single_use``: an unrealised ``ir.Pointwise`` is inlined by its reader).
  ``cat``'s inputs are the exception where the lowering picks ``ir.ConcatKernel.create`` (always on a
  CPU device, which the check on this machine is): each input is realised into its slice by a kernel
  of its own, which does the ``cat``'s work for that slice (``triton_lowering.concat_slices``).
  A pointwise node read by several nodes is recomputed by each reader lowered before something stores
  it (``StorageBox.mark_reuse``: at most ``realize_reads_threshold`` buffers read, no heavy op on a CPU
  device; an extern reader stores it), and readers of different slices of it share no buffer access, so
  no horizontal fusion (``triton_lowering.recompute_shared_pointwise``).
- **Two-step variance on a CPU device** (the check on this machine only): ``var_mean`` over at most 1,024
  elements is a mean and then a centred sum of squares (``lowering.use_two_step_variance``), and a CPU
  node's loops are never reordered to match a reader's, so a normalisation whose reads are mostly laid out
  in another order (read through a ``transpose``) computes its mean in a kernel of its own
  (``triton_lowering.two_step_variance_means``).
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
    COLUMN,
    FREE,
    FULL,
    ROW,
    SCATTER_ADD,
    FusionRules,
    Kernel,
    numel,
    role,
    scatter_values,
    squeeze_shape,
)
from gprof.analyses.gpu_specs import GpuSpec
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
    inlines_single_use = True

    def __init__(self, gpu: GpuSpec, channels_last: bool = True, reorderable: frozenset[int] = frozenset()) -> None:
        self.gpu = gpu
        # the ``cat`` lowering (``torch/_inductor/lowering.py``) returns a ``ConcatKernel`` on a CPU device;
        # on a GPU it takes ``pointwise_cat`` (inputs inlined) for up to ``max_pointwise_cat_inputs`` inputs
        self.concat_realizes_inputs = gpu.cpu_tensors
        self.unfused_addmm_before_pointwise = not gpu.cpu_tensors
        #: the phase's convolutions run channels-last (``GraphLowering.decide_layout_opt``); see ``for_phase``
        self.channels_last = channels_last
        #: outer reductions whose input is written in the same shape (:func:`reorderable_outer`)
        self.reorderable = reorderable

    def for_phase(self, nodes: list[Node]) -> TritonRules:
        """These rules for one phase's nodes: with the layout its convolutions get (:func:`channels_last`;
        always channels-last on a CPU device, the check on this machine)."""
        if self.gpu.cpu_tensors:
            return TritonRules(self.gpu)
        return TritonRules(self.gpu, channels_last(nodes), reorderable_outer(nodes))

    def conversion_kernels(self, convs: list[Node]) -> int:
        """Kernels converting the convolutions' input and weights to channels-last: one per tensor, none
        when ``decide_layout_opt`` keeps the default layout (on a GPU only, see :func:`channels_last`)."""
        return 1 + len(convs) if convs and self.channels_last else 0

    def shape(self, node: Node, r: str) -> Shape:
        """:func:`shape` on this device. On a GPU (not ``cpu_tensors``): a batch norm over a contiguous
        (not channels-last) input is one inner reduction with its pointwise part (:func:`inner_batch_norm`),
        and an outer reduction that does not split tiles with the pointwise nodes around it
        (:func:`reorders_outer`); a full reduction over fewer than 8 elements is a pointwise node
        (:data:`UNROLL_REDUCTIONS_THRESHOLD`)."""
        s = shape(node, r)
        if self.gpu.cpu_tensors:
            return s
        if (bn := inner_batch_norm(node, self.channels_last, self.gpu)) is not None:
            return bn
        if s.reduction and s.numel == 1 and s.rnumel < UNROLL_REDUCTIONS_THRESHOLD:
            return Shape(1, 1, False, False)  # unrolled into a pointwise node (:data:`UNROLL_REDUCTIONS_THRESHOLD`)
        return reorders_outer(s, self.gpu) if node.idx in self.reorderable else s

    def compatible(self, p: Node, rp: str, c: Node, rc: str) -> bool:
        return can_fuse(self.shape(p, rp), self.shape(c, rc))

    def joins(self, k: Kernel, node: Node, r: str, vertical: bool, members: list[tuple[Node, str]],
              shares_input: bool) -> bool:
        """Only a scheduler fusion joins a kernel: the node reads what the kernel computes or a buffer
        a member reads, and may fuse with the kernel's group (``FusedSchedulerNode.group``: its
        reduction's when it holds one, prologue and epilogue nodes fitting around it)."""
        shapes = [self.shape(m, rm) for m, rm in members]
        group = next((s for s in shapes if s.reduction), shapes[0] if shapes else None)
        return shares_input and (group is None or can_fuse(group, self.shape(node, r)))

    def merges(self, a: list[tuple[Node, str]], b: list[tuple[Node, str]]) -> bool:
        """May two kernels, one computing what the other reads, be one fused node? ``Scheduler.fuse_nodes``
        repeats ``fuse_nodes_once`` over pairs of (fused) nodes sharing a buffer, so a producer fuses with
        its reader's fused node whenever ``SIMDScheduling.can_fuse`` admits the combined group: at most
        one reduction group, every other node fitting around it."""
        shapes = [self.shape(m, rm) for m, rm in a + b]
        reductions = {(s.numel, s.rnumel) for s in shapes if s.reduction}
        group = next((s for s in shapes if s.reduction), shapes[0] if shapes else None)
        return len(reductions) <= 1 and group is not None and all(can_fuse(group, s) for s in shapes)

    def extra_kernels(self, node: Node, r: str) -> tuple[list[str], list[str]]:
        """Kernels a node needs besides its own (before it, after it): a batch norm computes its
        channel statistics apart from its pointwise output (forward: one reduction, backward: two),
        and a split reduction adds the reduction over its chunks for each reduction split."""
        if inner_batch_norm(node, self.channels_last, self.gpu) is not None and not self.gpu.cpu_tensors:
            return [], []  # one looped reduction kernel with its pointwise part (``inner_batch_norm``)
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
        weight and bias gradients) and, when that outer reduction splits, its second stages (one per gradient)."""
        if node.op_short not in LAYER_NORM_BACKWARDS or len(node.outputs) < 2 or not node.inputs:
            return []
        cols = node.inputs[0].shape[-1] if node.inputs[0].shape else 1
        rows = numel(node.inputs[0].shape) // max(1, cols)
        # a split column part: one first stage for both gradients (same group), then a second stage per gradient,
        # each reading only its own partial buffer (no shared data: ``InductorChoices.can_fuse``), so two kernels
        return [COLUMN_PART] + [SECOND_STAGE] * (len(node.outputs) - 1) * (split_factor(cols, rows, True, self.gpu) > 1)


SECOND_STAGE = "second stage of a split reduction"
COLUMN_PART = "column part of a normalisation backward (weight/bias gradients)"

# device-dependent rules: what Inductor does on a CUDA device and not on the CPU device of the check on this machine
# (``GpuSpec.cpu_tensors``), read from its branches on the device type

#: ``config.unroll_reductions_threshold``: a reduction over fewer elements is lowered as a pointwise node of its
#: output's size (``Reduction.create``: when it has more than one output, or on a GPU, ``is_gpu(device.type)``,
#: also a full reduction: the dynamic example's ``y.mean()`` over 4 values then fuses with the loss around it)
UNROLL_REDUCTIONS_THRESHOLD = 8
#: convolution ops as the recorded step names them, and the positions of the input and the weight among their inputs
CONVOLUTIONS = {"convolution": (0, 1), "conv2d": (0, 1), "_convolution": (0, 1), "cudnn_convolution": (0, 1),
                "convolution_backward": (1, 2), "cudnn_convolution_backward": (1, 2)}


def channels_last(nodes: list[Node]) -> bool:
    """``GraphLowering.decide_layout_opt`` (``torch/_inductor/graph.py``) for a training graph on a GPU: are the
    convolutions' tensors converted to channels-last? On a CPU device (mkldnn, ``SUPPORTED_MKLDNN_DEVICES``) it
    always is, which the check on this machine sees; on CUDA not when the graph has at least 300 nodes per
    convolution, any grouped convolution with more than one input channel per group, any convolution with at
    least twice as many input channels as output channels (kernel wider than 1), or when every convolution has
    at most 64 input and output channels. The backward keeps the forward's layout (its saved tensors); it is
    judged by the same weights, read from its ``convolution_backward`` nodes. No convolution: the default layout."""
    convs = [(n.inputs[at[0]].shape, n.inputs[at[1]].shape) for n in nodes
             if (at := CONVOLUTIONS.get(n.op_short)) is not None and len(n.inputs) > max(at)
             and len(n.inputs[at[0]].shape) == 4 and len(n.inputs[at[1]].shape) == 4]
    if not convs or len(nodes) >= 300 * len(convs):
        return False
    for x, w in convs:
        groups = x[1] // max(1, w[1]) if w[1] else 1
        if (groups > 1 and w[1] > 1) or (w[0] * 2 <= w[1] and w[2] > 1):
            return False  # grouped, or more input than output channels
    return not all(w[0] <= 64 and w[1] <= 64 for _, w in convs)


def inner_batch_norm(node: Node, layout_channels_last: bool, gpu: GpuSpec) -> Shape | None:
    """A batch norm (forward or backward) over a contiguous ``[N, C, *spatial]`` tensor on a GPU: one
    reduction kernel of group ``(C, N * spatial)`` that computes the statistics, the normalised output (its
    pointwise part, in a second loop of the looped reduction) and, in the forward, the running statistics'
    ``copy_`` (``triton_red_fused__native_batch_norm_legit_functional_copy__relu_0`` on an H200). ``ir.Reduction.num_splits``
    calls a reduction ``ReductionHint.INNER`` when a read's stride over a reduced dim is 1 (the spatial dims of
    a contiguous tensor) and splits it only as an inner reduction (``reduction_split_factor(inner_reduction=True)``);
    the full-size pointwise nodes fuse with it once ``Scheduler.shared_data_after_reordering_loop`` has reordered
    their loops to the reduction's (it returns -1 for CPU nodes). ``None``: not such a batch norm, a
    channels-last layout (:func:`channels_last`: an outer reduction, :meth:`TritonRules.extra_kernels`), a
    ``[N, C]`` input (reduced dims strided: outer) or an inner reduction that splits."""
    if (node.op_short not in BATCH_NORMS | BATCH_NORM_BACKWARDS or node.op_short.endswith("_no_training")
            or layout_channels_last or not node.inputs or len(node.inputs[0].shape) < 3):
        return None
    x = node.inputs[0].shape
    channels, spatial = x[1], numel(x[2:])
    rest = numel(x) // max(1, channels)
    if spatial <= 1 or split_factor(channels, rest, False, gpu) > 1:
        return None
    return Shape(channels, rest, True, False)


def reorderable_outer(nodes: list[Node]) -> frozenset[int]:
    """The outer reductions whose input a node of ``nodes`` writes in the same shape (dims of 1 aside). On a GPU
    a scheduler node's dependencies are not normalised (``SchedulerNode._compute_attrs``: loops are kept for
    ``loop_ordering_after_fusion``), and ``_try_reorder_loops_for_candidates`` reorders only when the write and
    the read have as many loop variables; a reduction reading a reshaped view (a 3-D ReLU backward summed as
    ``[rows, cols]``, the dynamic example) has fewer and does not fuse (the H200's torch 2.11 kept it apart)."""
    written = {t.storage: squeeze_shape(tuple(t.shape)) for n in nodes if role(n) != FREE for t in n.outputs}
    out = set()
    for n in nodes:
        if n.inputs and role(n) == COLUMN and written.get(n.inputs[0].storage) == squeeze_shape(tuple(n.inputs[0].shape)):
            out.add(n.idx)
    return frozenset(out)


def reorders_outer(s: Shape, gpu: GpuSpec) -> Shape:
    """On a GPU an outer reduction that does not split fuses with the full-size pointwise node that writes
    what it reduces (a bias gradient ``sum(0)`` with the ReLU backward before it,
    ``triton_per_fused_nll_loss_forward_sum_threshold_backward_2`` on an H200): ``Scheduler.can_fuse`` finds no
    shared data in their different loop orders, then ``shared_data_after_reordering_loop`` reorders the
    pointwise node's loops to the reduction's (``_try_reorder_loops_for_candidates``; -1 for CPU nodes, so never
    in the check on this machine), and the reordered node's tiling is the reduction's ``(numel, rnumel)``, which
    ``tiling_prevents_reduction_fusion`` admits (``SIMDScheduling.can_fuse``). A split reduction's first stage
    reads through ``Reduction.create_multilayer``'s reindexed loader: kept apart, as before; and a reduction over
    fewer than ``config.unroll_reductions_threshold`` (8) elements is unrolled into a pointwise node of its output's
    size (``Reduction.create``), which fuses with no full-size node either (the held-out tiny model's 4 rows)."""
    if (s.reduction and s.outer and s.rnumel >= UNROLL_REDUCTIONS_THRESHOLD
            and split_factor(s.numel, s.rnumel, True, gpu) == 1):
        return Shape(s.numel, s.rnumel, True, False)
    return s


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
