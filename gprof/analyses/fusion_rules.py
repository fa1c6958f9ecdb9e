"""The per-node and per-pair rules of Inductor's scheduler that fusion prediction is built from.

A node's *role* says how it takes part in a kernel (free view, fence, pointwise, row/column/full
reduction); two nodes fuse vertically when the consumer reads what the producer wrote over an
iteration space they share. :mod:`gprof.analyses.fusion` groups a phase with these rules and
:mod:`gprof.analyses.aot_partition` moves work between the phases.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gprof.analyses import hazards as hz
from gprof.analyses.opclass import COLLECTIVE, EXTERN, OPTIMIZER, REDUCTION, SCATTER, UNKNOWN, VIEW, node_class
from gprof.graph.model import Node

# fusion roles
FREE, BOUNDARY, ALONE, POINT, ROW, COLUMN, FULL = "free", "boundary", "alone", "point", "row", "column", "full"
#: an accumulating scatter that Inductor generates code for rather than calling a fallback
SCATTER_ADD = "scatter_add"

#: ops that Inductor lowers to ``index_put(zeros, indices, values, accumulate=True)`` or that are that op:
#: ``embedding_dense_backward``'s decomposition (``torch/_decomp/decompositions.py``, registered for
#: every device but XPU in ``torch/_inductor/decomposition.py``) is ``new_zeros`` + ``index_put``
GENERATED_SCATTERS = frozenset({"embedding_dense_backward", "index_put", "index_put_", "_index_put_impl_"})


@dataclass(slots=True, eq=False)
class Kernel:
    """One predicted kernel: an extern call or a generated (fused) kernel."""

    phase: str
    nodes: list[int]
    generated: bool
    #: reduction signatures (rows, rnumel) inside; two different ones never share a CPU kernel
    reductions: set[tuple[int, int]] = field(default_factory=set)
    #: why a kernel exists that no eager op matches
    note: str | None = None
    #: (graph, stage) it runs at, for ordering
    at: tuple[int, int] = (0, 0)
    #: nodes of the other phase part of whose work this kernel also does, not counted as eager
    #: launches: forward ops AOTAutograd's partitioner recomputes in a backward kernel, and the
    #: boolean mask of a backward op (``threshold_backward``) that it computes in the forward; and the
    #: normalisation backwards whose column part a split-off kernel computes (same phase); on the Triton
    #: target also same-phase pointwise nodes a kernel recomputes instead of loading (``triton_lowering``)
    also: list[int] = field(default_factory=list)
    #: ops the compiled graph runs that no eager node ran (the zero-gradient backward of a value that
    #: leaves a graph at a graph break), named as AOTAutograd traces them
    extra: list[str] = field(default_factory=list)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def squeeze_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def role(node: Node) -> str:
    cls = node_class(node)
    if cls == VIEW:
        return FREE
    if hz.hazard_kind(node) is not None:
        return BOUNDARY
    if cls in (EXTERN, COLLECTIVE, OPTIMIZER, UNKNOWN):
        return ALONE if cls != EXTERN else BOUNDARY
    if node.op_short in SCATTER:
        return SCATTER_ADD if generated_scatter(node) else ALONE
    if cls != REDUCTION:
        return POINT
    if not node.inputs or not node.outputs:
        return POINT
    i, o = node.inputs[0].shape, node.outputs[0].shape
    ni, no = numel(i), numel(o)
    if no <= 1:
        return FULL
    if no == ni:
        return ROW  # composite (layer norm, softmax): full-size output, per-row statistics
    if len(o) == len(i):  # keepdim: the reduced dims are the ones that became 1
        reduced = [d for d in range(len(i)) if o[d] == 1 and i[d] != 1]
        return ROW if reduced == list(range(len(i) - len(reduced), len(i))) else COLUMN
    sq = squeeze_shape(o)
    return ROW if squeeze_shape(i)[:len(sq)] == sq else COLUMN


def generated_scatter(node: Node) -> bool:
    """Does Inductor's CPU backend generate this scatter inside a ``cpp_fused_*`` kernel? Its
    ``index_put_impl_`` lowering (``torch/_inductor/lowering.py``) emits an ``ir.Scatter`` with an
    atomic-add store unless it falls back: deterministic mode, a boolean index, or an accumulation
    dtype ``needs_fallback_due_to_atomic_add_limitations`` rules out (``int64``/``bool`` on a CPU).
    The generated node is a plain scheduler node, so it shares the kernel of the nodes around it
    (``CppScheduling``'s kernel group ends only at an extern call)."""
    if node.op_short not in GENERATED_SCATTERS or not node.outputs:
        return False
    out = node.outputs[0]
    if not out.device.startswith("cpu") or "float" not in out.dtype:
        return False
    return not any(t.dtype.rsplit(".", 1)[-1] in ("bool", "uint8") for t in node.inputs)


def scatter_values(node: Node) -> int:
    """Elements a generated scatter iterates over: its values (``embedding_dense_backward``: the
    gradient, its first input; ``index_put``: the last floating input)."""
    if node.op_short == "embedding_dense_backward":
        return numel(node.inputs[0].shape) if node.inputs else 0
    floats = [t for t in node.inputs[1:] if "float" in t.dtype]
    return numel(floats[-1].shape) if floats else 0


def iteration_spaces(node: Node, r: str) -> tuple[int, ...]:
    """Iteration spaces a consumer may share with this node."""
    out = numel(node.outputs[0].shape) if node.outputs else 0
    if r in (ROW, COLUMN):
        return (numel(node.inputs[0].shape), out) if r == ROW else (out,)
    if r == FULL:
        return (1,)
    return (out,)


def signature(node: Node, r: str) -> tuple[int, int] | None:
    if r not in (ROW, COLUMN):
        return None
    ni = numel(node.inputs[0].shape)
    last = node.inputs[0].shape[-1] if node.inputs[0].shape else 1
    rows = ni // max(1, last) if numel(node.outputs[0].shape) == ni else numel(node.outputs[0].shape)
    return (rows, ni // max(1, rows)) if r == ROW else (-rows, ni // max(1, rows))


def compatible(p: Node, rp: str, c: Node, rc: str) -> bool:
    """Can consumer ``c`` run in the same kernel as producer ``p`` (vertical fusion)?"""
    if rc == FULL:
        return True
    if rc == COLUMN:
        return False
    if rc == SCATTER_ADD:  # a loop over the values, writing anywhere in its output
        need = scatter_values(c)
    else:
        need = numel(c.inputs[0].shape) if rc == ROW else (numel(c.outputs[0].shape) if c.outputs else 0)
    spaces = iteration_spaces(p, rp)
    if rp == POINT and rc in (POINT, SCATTER_ADD) and need and spaces[0] and (spaces[0] % need == 0 or need % spaces[0] == 0):
        return True  # a slice of what the producer wrote (q/k/v of a packed projection), or its select_backward
    return need in spaces

#: a reduction this small (input elements) shares a CPU kernel with reductions of other shapes
SMALL_REDUCTION = 4096


class FusionRules:
    """What decides a kernel's extent on a fusion target; this class answers for Inductor's C++ backend
    (``target`` ``cpu``) and :class:`gprof.analyses.triton_rules.TritonRules` for Triton (``cuda``).
    The grouping in :mod:`gprof.analyses.fusion` is shared and asks these questions."""

    target = "cpu"
    #: generated kernels of consecutive stages with no extern call between them are one kernel
    #: (``CppScheduling``'s kernel group, flushed only at an extern call)
    joins_stages = True
    #: a pointwise node read by one pointwise node runs in its reader's kernel (``triton_lowering.inline_single_use``)
    inlines_single_use = False
    #: ``cat``'s inputs are realised into its slices (``ir.ConcatKernel``), not inlined into it
    concat_realizes_inputs = False
    #: ``add(mm, c)`` stays apart from the matmul when every user of the sum is pointwise
    #: (``should_prefer_unfused_addmm``: GPU devices only)
    unfused_addmm_before_pointwise = False

    def for_phase(self, nodes: list[Node]) -> FusionRules:
        """These rules for one phase's nodes (Triton reads the layout its convolutions get from them)."""
        return self

    def conversion_kernels(self, convs: list[Node]) -> int:
        """Kernels converting the convolutions' tensors to channels-last (Inductor's layout optimisation,
        always on a CPU device): one kernel group here."""
        return 1 if convs else 0

    def compatible(self, p: Node, rp: str, c: Node, rc: str) -> bool:
        """Can consumer ``c`` run in the same kernel as producer ``p`` (vertical fusion)?"""
        return compatible(p, rp, c, rc)

    def joins(self, k: Kernel, node: Node, r: str, vertical: bool, members: list[tuple[Node, str]],
              shares_input: bool) -> bool:
        """May ``node`` join kernel ``k`` of its stage: ``vertical`` when ``k`` computes one of its
        inputs, else horizontally (``shares_input``: it reads a buffer a member reads)? On the CPU any
        work of the stage shares the kernel group unless the two hold reductions of different shapes
        (small ones share anyway), and row reductions chain vertically whatever their shapes."""
        sig = signature(node, r)
        if sig is None or numel(node.inputs[0].shape) <= SMALL_REDUCTION or k.reductions <= {sig} or all(
                abs(rows) * rnumel <= SMALL_REDUCTION for rows, rnumel in k.reductions):
            return True
        return vertical and sig[0] > 0 and all(rows > 0 for rows, _ in k.reductions)

    def merges(self, a: list[tuple[Node, str]], b: list[tuple[Node, str]]) -> bool:
        """May two kernels of one stage, one computing what the other reads, be one kernel? (The C++
        grouping decides kernels by stage and reduction shape alone: not asked.)"""
        return False

    def extra_kernels(self, node: Node, r: str) -> tuple[list[str], list[str]]:
        """Notes of the kernels ``node`` needs besides its own, before it and after it."""
        return [], []

    def apart_kernels(self, node: Node, r: str) -> list[str]:
        """Notes of kernels that do part of ``node``'s work beside its own kernel, emitted just after
        that kernel (none on the CPU: a kernel group holds every shape)."""
        return []


_ALLOCATIONS = ("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided")


def through_free(nodes: list[Node], roles: dict[int, str],
                  producers: dict[int, list[int]]) -> dict[int, list[int]]:
    """Producers with free nodes looked through: an ``_unsafe_view`` of an mm output hands the mm's
    data on, while an ``empty_like`` reads only a shape and hands nothing on."""
    via: dict[int, list[int]] = {}
    out: dict[int, list[int]] = {}
    for n in nodes:
        real: list[int] = []
        for p in producers.get(n.idx, ()):
            real.extend(via[p] if p in via else ([] if roles.get(p) == FREE else [p]))
        real = list(dict.fromkeys(real))
        if roles[n.idx] == FREE:
            via[n.idx] = [] if n.op_short in _ALLOCATIONS else real
        else:
            out[n.idx] = real
    return out


def consumers_of(producers: dict[int, list[int]]) -> dict[int, list[int]]:
    """The producer map turned around: node -> the nodes that read it, in op order."""
    out: dict[int, list[int]] = {}
    for c, ps in producers.items():
        for p in ps:
            out.setdefault(p, []).append(c)
    return out
