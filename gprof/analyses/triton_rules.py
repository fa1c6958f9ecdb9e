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
    FULL,
    ROW,
    SCATTER_ADD,
    FusionRules,
    Kernel,
    numel,
    scatter_values,
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
