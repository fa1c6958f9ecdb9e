"""Op classes: what Inductor would do with each eager op.

The classes are the ones fusion needs: free views (no kernel), pointwise, reduction, extern
compute (mm/conv/SDPA/custom: always one kernel of its own), data movement, collective, random and
optimizer foreach/fused. ``torch.Tag`` decides first; a small table (checked against Inductor's
``lowerings``/``fallbacks``/``select_decomp_table()`` in tests/test_analyses_opclass.py) covers the
untagged ops. Importing Inductor's tables costs seconds, far over the per-step analysis budget, so
they are consulted only when Inductor is already loaded in the process.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

from gprof.graph.model import Node, StepGraph

VIEW, POINTWISE, REDUCTION, EXTERN = "view", "pointwise", "reduction", "extern"
DATA_MOVEMENT, COLLECTIVE, RANDOM, OPTIMIZER, UNKNOWN = "data_movement", "collective", "random", "optimizer", "unknown"
CLASSES = (VIEW, POINTWISE, REDUCTION, EXTERN, DATA_MOVEMENT, COLLECTIVE, RANDOM, OPTIMIZER, UNKNOWN)

#: ops that allocate or annotate without computing: no kernel under Inductor
_FREE = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "detach", "alias", "lift_fresh",
         "_record_function_enter_new", "_record_function_exit", "_unsafe_view", "resize_", "set_"}
_EXTERN = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "addmv", "mv", "dot", "matmul", "_int_mm", "convolution",
           "convolution_backward", "_convolution", "conv1d", "conv2d", "conv3d", "cudnn_convolution",
           "mkldnn_convolution", "_scaled_dot_product_flash_attention",
           "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
           "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention_for_cpu_backward",
           "_scaled_dot_product_flash_attention_backward", "_scaled_dot_product_efficient_attention_backward",
           "_flash_attention_forward", "_flash_attention_backward", "_efficient_attention_forward",
           "_efficient_attention_backward", "_embedding_bag", "_embedding_bag_backward", "linalg_svd",
           "_linalg_eigh", "linalg_qr", "_linalg_solve_ex", "cholesky", "_adaptive_avg_pool2d_backward",
           "max_pool2d_with_indices_backward", "_cdist_forward", "sort", "topk", "cumsum", "cumprod"}
#: reductions, including composites Inductor lowers to a reduction plus its pointwise epilogue
_REDUCTION = {"native_layer_norm", "native_layer_norm_backward", "_softmax", "_safe_softmax", "_log_softmax",
              "_softmax_backward_data", "_log_softmax_backward_data", "native_batch_norm",
              "native_batch_norm_backward", "_native_batch_norm_legit", "_native_batch_norm_legit_functional",
              "_native_batch_norm_legit_no_training", "native_group_norm", "native_group_norm_backward",
              "mse_loss", "nll_loss_forward", "nll_loss2d_forward", "binary_cross_entropy",
              "binary_cross_entropy_with_logits", "cross_entropy_loss", "l1_loss", "smooth_l1_loss",
              "huber_loss", "kl_div", "_adaptive_avg_pool2d", "avg_pool2d", "max_pool2d_with_indices",
              "rms_norm", "_fused_rms_norm", "linalg_vector_norm", "norm", "var_mean", "logsumexp"}
_POINTWISE = {"fill_", "zero_", "zeros_like", "ones_like", "full_like", "zeros", "ones", "full", "new_zeros",
              "new_ones", "new_full", "scalar_tensor",
              "arange", "mse_loss_backward", "nll_loss_backward", "nll_loss2d_backward", "avg_pool2d_backward",
              "threshold_backward", "tanh_backward", "sigmoid_backward", "gelu_backward", "silu_backward",
              "hardtanh_backward", "leaky_relu_backward", "elu_backward", "softplus_backward", "masked_fill",
              "masked_fill_", "where", "lerp_", "lerp", "addcmul_", "addcdiv_", "addcmul", "addcdiv",
              "native_dropout_backward", "binary_cross_entropy_backward", "l1_loss_backward",
              "smooth_l1_loss_backward", "huber_loss_backward"}
_DATA_MOVEMENT = {"clone", "_to_copy", "copy_", "copy", "contiguous", "cat", "stack", "select_backward", "slice_backward",
                  "index", "index_select", "gather", "scatter", "scatter_", "scatter_add", "scatter_add_",
                  "index_put", "index_put_", "_index_put_impl_", "index_add", "index_add_", "constant_pad_nd",
                  "flip", "roll", "repeat", "embedding", "embedding_dense_backward", "masked_select", "nonzero",
                  "_local_scalar_dense", "unique", "_unique", "_unique2", "unique_dim", "unique_consecutive",
                  "bincount", "repeat_interleave", "one_hot", "masked_scatter", "select_scatter",
                  "slice_scatter", "as_strided_scatter", "diagonal_backward", "unfold_backward", "narrow_copy",
                  "_unsafe_index", "tril", "triu", "is_nonzero", "equal", "item", "pad",
                  "reflection_pad2d", "replication_pad2d", "upsample_nearest2d", "upsample_bilinear2d"}
#: data movement that writes through an index: Inductor emits atomic/scatter stores that never fuse
SCATTER = {"scatter", "scatter_", "scatter_add", "scatter_add_", "index_put", "index_put_", "_index_put_impl_",
           "index_add", "index_add_", "embedding_dense_backward", "masked_scatter", "bincount"}
_COLLECTIVE_NS = {"c10d", "_c10d_functional", "c10d_functional", "_dtensor"}
_KNOWN_NS = {"aten", "prims", "profiler"}


class OpFacts(NamedTuple):
    """What torch knows of an op overload: its tags, whether every output only aliases an input,
    and Inductor's class for it when Inductor is loaded."""

    tags: frozenset[str]
    alias_only: bool
    inductor: str | None


@dataclass(frozen=True, slots=True)
class OpInfo:
    """Classification of one op overload (cached per name)."""

    cls: str
    #: the reason, for the report and for tests: "tag:pointwise", "table", "schema:view", ...
    why: str
    tags: frozenset[str]
    inplace: bool


#: where op facts come from: torch's op registry, installed by ``gprof.analyses.use_torch``
_op_facts: Callable[[str], OpFacts] | None = None
#: facts a step file stored for its ops (``learn_op_facts``), for readers without torch
_learned: dict[str, OpFacts] = {}
#: facts the training process looked up for the ops it handed to this step worker (``prefer_op_facts``)
_preferred: dict[str, OpFacts] = {}


class NeedsTorchError(RuntimeError):
    """An op to classify with neither torch installed here nor a stored fact for it."""


def set_op_facts(fn: Callable[[str], OpFacts]) -> None:
    """Install the source of op facts (``gprof.analyses.torch_ops.op_facts``); classification
    needs torch, but the readers that import this module for its names and text do not."""
    global _op_facts
    _op_facts = fn
    classify.cache_clear()


def has_torch_facts() -> bool:
    return _op_facts is not None


def learn_op_facts(facts: dict[str, OpFacts]) -> None:
    """Add facts a step file stored (``StepReader.op_facts``), so a reader without torch classifies
    those ops as the process that recorded them did. Torch's own facts win where installed, so a
    re-target in a torch process classifies exactly as ``run_all`` does there. The facts are torch's
    about an op name, the same in every file of one torch version, so they are kept process-wide."""
    _learned.update(facts)


def prefer_op_facts(facts: dict[str, OpFacts]) -> None:
    """Take the facts the training process looked up for its ops, ahead of this process's own: the
    step worker (gprof/capture/worker.py) lacks the ops the user's code registered there, and
    Inductor's verdicts where only the training process imported Inductor; with them, a handed-off
    step is classified, analysed and stored as an in-process build there would be."""
    _preferred.update(facts)


def op_facts_of(ops: list[str]) -> dict[str, OpFacts]:
    """The facts of ``ops`` from the installed source, what a step file stores for readers; empty
    where no torch source is installed (a reader writing a step in a test)."""
    return {} if _op_facts is None else {op: _facts(op) for op in ops}


def facts_to_json(f: OpFacts) -> dict[str, Any]:
    return {"tags": sorted(f.tags), "alias_only": f.alias_only, "inductor": f.inductor}


def facts_from_json(d: dict[str, Any]) -> OpFacts:
    return OpFacts(frozenset(d["tags"]), bool(d["alias_only"]), d["inductor"])


def _facts(op: str) -> OpFacts:
    if _op_facts is not None:
        preferred = _preferred.get(op)
        return preferred if preferred is not None else _op_facts(op)
    learned = _learned.get(op)
    if learned is None:
        raise NeedsTorchError(f"classifying {op} needs torch or the op facts a step file stores (files written "
                              "before torch-gprof stored them have none): install torch, or re-record the step")
    return learned


@cache
def classify(op: str) -> OpInfo:
    """Class of an op name such as ``aten.add.Tensor``."""
    parts = op.split(".")
    ns = parts[0]
    name = parts[1] if len(parts) > 1 else op
    tags, alias_only, by_inductor = _facts(op)
    inplace = "inplace" in tags or name.endswith("_")
    if ns in _COLLECTIVE_NS:
        return OpInfo(COLLECTIVE, "namespace", tags, inplace)
    if name.startswith("_foreach_") or name.startswith("_fused_"):
        return OpInfo(OPTIMIZER, "name", tags, inplace)
    if ns == "profiler" or name in _FREE:
        return OpInfo(VIEW, "table", tags, inplace)
    if alias_only:
        return OpInfo(VIEW, "schema:alias", tags, inplace)
    if ns not in _KNOWN_NS or name in _EXTERN:  # before random: SDPA is seeded (dropout) yet extern
        return OpInfo(EXTERN, "table" if name in _EXTERN else "custom op", tags, inplace)
    if "nondeterministic_seeded" in tags or name in ("native_dropout", "dropout"):
        return OpInfo(RANDOM, "tag:nondeterministic_seeded", tags, inplace)
    if name in _DATA_MOVEMENT:
        return OpInfo(DATA_MOVEMENT, "table", tags, inplace)
    if "reduction" in tags or name in _REDUCTION:
        return OpInfo(REDUCTION, "tag:reduction" if "reduction" in tags else "table", tags, inplace)
    if "pointwise" in tags or name in _POINTWISE:
        return OpInfo(POINTWISE, "tag:pointwise" if "pointwise" in tags else "table", tags, inplace)
    if by_inductor is not None:
        return OpInfo(by_inductor, "inductor", tags, inplace)
    return OpInfo(UNKNOWN, "unclassified", tags, inplace)


def op_classes(graph: StepGraph) -> dict[str, Any]:
    """Per phase, the number of nodes of each class, plus the ops nobody could classify."""
    counts: dict[str, dict[str, int]] = {}
    unknown: dict[str, int] = {}
    for n in graph.nodes:
        c = classify(n.op).cls
        per = counts.setdefault(n.phase, {})
        per[c] = per.get(c, 0) + 1
        if c == UNKNOWN:
            unknown[n.op] = unknown.get(n.op, 0) + 1
    return {"by_phase": counts, "unknown_ops": [{"op": k, "count": v} for k, v in sorted(unknown.items())]}


def node_class(node: Node) -> str:
    """Class of a node; opaque compiled regions are extern whatever op carried them."""
    if node.attrs.get("compiled_region") is not None:
        return EXTERN
    return classify(node.op).cls


def format_op_classes(step: dict[str, Any]) -> list[str]:
    r = step["op_classes"]
    lines = ["   op classes"]
    for phase, per in r["by_phase"].items():
        body = ", ".join(f"{c} {n}" for c, n in sorted(per.items(), key=lambda kv: -kv[1]))
        lines.append(f"     {phase:<10} {body}")
    if r["unknown_ops"]:
        lines.append("     unknown ops: " + ", ".join(f"{u['op']} x{u['count']}" for u in r["unknown_ops"]))
    return lines
