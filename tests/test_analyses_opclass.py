"""Op classes on real aten op names, and the hand table checked against Inductor's own tables."""
from __future__ import annotations

import pytest

from gprof.analyses import opclass
from gprof.analyses.opclass import classify
from gprof.graph.model import Node, StepGraph, StepMeta


@pytest.mark.parametrize("op, cls", [
    ("aten.view.default", opclass.VIEW),
    ("aten.t.default", opclass.VIEW),
    ("aten.detach.default", opclass.VIEW),
    ("aten.empty_like.default", opclass.VIEW),
    ("aten._unsafe_view.default", opclass.VIEW),
    ("aten.add.Tensor", opclass.POINTWISE),
    ("aten.relu.default", opclass.POINTWISE),
    ("aten.threshold_backward.default", opclass.POINTWISE),
    ("aten.zeros_like.default", opclass.POINTWISE),
    ("aten.sum.dim_IntList", opclass.REDUCTION),
    ("aten.native_layer_norm.default", opclass.REDUCTION),
    ("aten._safe_softmax.default", opclass.REDUCTION),
    ("aten.mse_loss.default", opclass.REDUCTION),
    ("aten.addmm.default", opclass.EXTERN),
    ("aten.bmm.default", opclass.EXTERN),
    ("aten.convolution.default", opclass.EXTERN),
    ("aten._scaled_dot_product_flash_attention_for_cpu.default", opclass.EXTERN),
    ("mylib.custom_op.default", opclass.EXTERN),
    ("aten.clone.default", opclass.DATA_MOVEMENT),
    ("aten.cat.default", opclass.DATA_MOVEMENT),
    ("aten.index.Tensor", opclass.DATA_MOVEMENT),
    ("aten.select_backward.default", opclass.DATA_MOVEMENT),
    ("c10d.allreduce_.default", opclass.COLLECTIVE),
    ("_c10d_functional.all_reduce.default", opclass.COLLECTIVE),
    ("aten.bernoulli_.float", opclass.RANDOM),
    ("aten.randn.default", opclass.RANDOM),
    ("aten.native_dropout.default", opclass.RANDOM),
    ("aten._foreach_add_.List", opclass.OPTIMIZER),
    ("aten._fused_adam_.default", opclass.OPTIMIZER),
])
def test_each_class(op, cls):
    assert classify(op).cls == cls


def test_unknown_ops_are_listed():
    meta = StepMeta(run="t", step=0)
    nodes = [Node(idx=i, key=str(i), op=op, phase="forward", module=None)
             for i, op in enumerate(["aten.add.Tensor", "aten.no_such_op_xyz.default", "aten.no_such_op_xyz.default"])]
    r = opclass.op_classes(StepGraph(meta=meta, nodes=nodes))
    assert r["unknown_ops"] == [{"op": "aten.no_such_op_xyz.default", "count": 2}]
    assert r["by_phase"]["forward"] == {"pointwise": 1, "unknown": 2}
    assert any("no_such_op_xyz" in line for line in opclass.format_op_classes({"op_classes": r}))


def test_compiled_region_node_is_extern():
    n = Node(idx=0, key="0", op="aten.add.Tensor", phase="forward", module=None, attrs={"compiled_region": "f"})
    assert opclass.node_class(n) == opclass.EXTERN


def test_table_agrees_with_inductor():
    """Every op the table calls pointwise/reduction/data movement is one Inductor lowers or
    decomposes into generated code, and every extern one is a fallback, an mm-like lowering
    Inductor emits as an extern call, or absent from its lowerings."""
    lowering = pytest.importorskip("torch._inductor.lowering", reason="Inductor not importable in this torch build")
    import torch
    from torch._inductor.decomposition import select_decomp_table

    decomps = select_decomp_table()
    generated_classes = (opclass.POINTWISE, opclass.REDUCTION, opclass.DATA_MOVEMENT)
    disagree = []
    for name in sorted(opclass._POINTWISE | opclass._REDUCTION | opclass._DATA_MOVEMENT | opclass._EXTERN):
        packet = getattr(torch.ops.aten, name, None)
        if packet is None:
            continue
        # in-place ops reach Inductor functionalised: judge them by their functional twin
        functional = getattr(torch.ops.aten, "index_put" if name == "_index_put_impl_" else name.rstrip("_"), packet)
        overloads = [getattr(p, o) for p in (packet, functional) for o in p.overloads()]
        lowered = any(f in lowering.lowerings or f in decomps for f in overloads) or packet in lowering.lowerings \
            or functional in lowering.lowerings
        fallback = any(f in lowering.fallbacks for f in overloads)
        cls = classify(f"aten.{name}.{packet.overloads()[0]}").cls
        if cls in generated_classes and not lowered and name not in _HOST_OPS:
            disagree.append((name, cls, "not lowered"))
        if cls == opclass.EXTERN and lowered and not fallback and name not in _EXTERN_LOWERINGS:
            disagree.append((name, cls, "lowered to generated code"))
    assert disagree == [], disagree


#: ops that run on the host or with data-dependent shapes: Inductor never generates them
_HOST_OPS = {"_local_scalar_dense", "item", "is_nonzero", "equal", "nonzero", "masked_select", "unique", "_unique",
             "_unique2", "unique_dim", "unique_consecutive", "bincount", "repeat_interleave"}
#: mm-like ops Inductor lowers but emits as extern calls (templates only under max-autotune)
_EXTERN_LOWERINGS = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "addmv", "mv", "dot", "matmul", "_int_mm",
                     "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "convolution_backward",
                     "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
                     "_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention",
                     "_flash_attention_forward", "_efficient_attention_forward", "sort", "topk", "cumsum",
                     "cumprod", "_embedding_bag", "_cdist_forward", "_adaptive_avg_pool2d_backward",
                     "max_pool2d_with_indices_backward", "cholesky", "linalg_qr", "_linalg_eigh", "linalg_svd",
                     "_linalg_solve_ex", "_embedding_bag_backward",
                     "_scaled_dot_product_flash_attention_for_cpu_backward",
                     "_scaled_dot_product_flash_attention_backward",
                     "_scaled_dot_product_efficient_attention_backward", "_flash_attention_backward",
                     "_efficient_attention_backward", "mkldnn_convolution", "cudnn_convolution"}
