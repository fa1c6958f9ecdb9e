"""Fusion prediction on small graphs built by hand, so each rule is checked in isolation (the examples
and Inductor itself are compared in benchmarks/fusion_vs_inductor.py; hazards and compile regions:
tests/test_analyses_hazards_regions.py)."""
from __future__ import annotations

import pytest
from graphbuild import G, generated

from gprof.analyses import fusion
from gprof.graph.model import StepGraph


# ----------------------------------------------------------------------------------- fusion
def test_pointwise_chain_fuses_and_views_are_free():
    g = G()
    x = g.input((64, 32))
    a = g.op("aten.mul.Tensor", [x, x])
    v = g.op("aten.view.default", [a], (2048,), view=True)
    b = g.op("aten.relu.default", [v])
    g.op("aten.add.Tensor", [b, b])
    assert generated(g.graph) == [["mul", "relu", "add"]]


def test_extern_ends_the_kernel():
    g = G()
    x, w = g.input((64, 32)), g.input((32, 32))
    a = g.op("aten.relu.default", [x])
    b = g.op("aten.mm.default", [a, w])
    g.op("aten.tanh.default", [b])
    kinds = [(k.generated, len(k.nodes)) for k in fusion.predict(g.graph)["forward"]]
    assert kinds == [(True, 1), (False, 1), (True, 1)]


def test_pointwise_prologue_and_epilogue_fuse_into_row_reduction():
    g = G()
    x = g.input((64, 32))
    a = g.op("aten.exp.default", [x])
    s = g.op("aten.sum.dim_IntList", [a], (64, 1))
    g.op("aten.div.Tensor", [a, s])
    assert generated(g.graph) == [["exp", "sum", "div"]]


def test_column_reduction_waits_for_its_input():
    # a bias-gradient style sum(0) runs after the matmul that reads the same value, in the next kernel
    g = G()
    x, w = g.input((64, 32)), g.input((32, 32))
    a = g.op("aten.relu.default", [g.op("aten.mm.default", [x, w])])
    g.op("aten.mm.default", [a, w])
    g.op("aten.sum.dim_IntList", [a], (1, 32))  # bias-gradient style: reduces the leading dim
    assert generated(g.graph) == [["relu"], ["sum"]]


def test_broadcast_read_of_a_smaller_pointwise_result_starts_a_new_kernel():
    g = G()
    x, y, w = g.input((1, 7)), g.input((64, 32)), g.input((7, 7))
    a = g.op("aten.neg.default", [g.op("aten.mm.default", [x, w])], (7,))
    g.op("aten.mm.default", [g.op("aten.view.default", [a], (1, 7), view=True), w], (1, 7))
    g.op("aten.add.Tensor", [y, a], (64, 32))
    assert generated(g.graph) == [["neg"], ["add"]]


def test_kernels_of_consecutive_stages_with_no_extern_between_are_one_cpu_kernel():
    # the CPU backend ends a kernel only at an extern call: a column sum that cannot fuse with the
    # pointwise op it reads still shares its function when nothing is emitted between them
    g = G()
    x, y = g.input((64, 32)), g.input((7,))
    a = g.op("aten.relu.default", [x])
    g.op("aten.sum.dim_IntList", [a], (1, 32))
    g.op("aten.add.Tensor", [x, g.op("aten.neg.default", [y])], (64, 32))
    assert [sorted(k) for k in generated(g.graph)] == [["add", "neg", "relu", "sum"]]


@pytest.mark.parametrize("rows, cols, kernels", [(1024, 256, [["sum"], ["native_layer_norm"]]),
                                                  (8, 16, [["sum", "native_layer_norm"]])])
def test_independent_reductions_share_a_kernel_only_when_small(rows, cols, kernels):
    g = G()
    x, w = g.input((rows, cols)), g.input((cols, cols))
    h1, h2 = g.op("aten.mm.default", [x, w]), g.op("aten.mm.default", [x, w])
    g.op("aten.sum.dim_IntList", [h1], (1, cols))
    g.op("aten.native_layer_norm.default", [h2])
    assert generated(g.graph) == kernels


def test_independent_pointwise_work_shares_a_kernel():
    g = G()
    x, w = g.input((64, 32)), g.input((32, 32))
    h1, h2 = g.op("aten.mm.default", [x, w]), g.op("aten.mm.default", [x, w])
    g.op("aten.relu.default", [h1])
    g.op("aten.tanh.default", [h2], (64, 32))
    assert generated(g.graph) == [["relu", "tanh"]]


def test_random_source_joins_its_consumer_kernel():
    g = G()
    x, w = g.input((64, 32)), g.input((32, 32))
    h = g.op("aten.mm.default", [x, w])
    e = g.op("aten.empty_like.default", [h])
    m = g.op("aten.bernoulli_.float", [e], view=True)
    g.op("aten.mul.Tensor", [h, m])
    assert generated(g.graph) == [["bernoulli_", "mul"]]


def test_kernels_hold_at_most_64_nodes():
    g = G()
    t = g.input((16,))
    for _ in range(100):
        t = g.op("aten.sin.default", [t])
    assert [len(k) for k in generated(g.graph)] == [64, 36]


def test_hazard_splits_the_graph():
    g = G()
    x = g.input((16,))
    a = g.op("aten.sin.default", [x])
    g.op("aten._local_scalar_dense.default", [a], ())
    g.op("aten.cos.default", [a])
    assert generated(g.graph) == [["sin"], ["cos"]]


def test_compiled_region_is_opaque():
    g = G()
    x = g.input((16,))
    a = g.op("aten.sin.default", [x])
    b = g.op("aten.cos.default", [a])
    g.graph.nodes[-1].attrs["compiled_region"] = "CompiledFunction"
    g.op("aten.exp.default", [b])
    assert generated(g.graph) == [["sin"], ["exp"]]


def test_chain_reports_bytes_launches_and_saving():
    g = G()
    x = g.input((1024, 256))
    a = g.op("aten.mul.Tensor", [x, x], dur_ns=50_000)
    b = g.op("aten.relu.default", [a], dur_ns=50_000)
    g.op("aten.add.Tensor", [b, x], dur_ns=50_000)
    r = fusion.analyse(g.graph)
    assert r["predicted_kernels"]["forward"] == 1 and r["eager_kernels"]["forward"] == 3
    (c,) = r["chains"]
    assert c["eager_kernels"] == 3 and c["fused_kernels"] == 1 and c["launches_saved"] == 2
    assert c["intermediate_bytes"] == 2 * 2 * 1024 * 256 * 4  # two intermediates, each written and read once
    assert 0 < c["est_time_saved_ns"] <= 150_000
    assert c["ops"] == ["mul", "relu", "add"] and c["module"] == "m"


def test_intermediate_needed_later_is_not_counted():
    g = G()
    x = g.input((256,))
    a = g.op("aten.tanh.default", [x])
    g.op("aten.add.Tensor", [a, x])
    g.op("aten.tanh_backward.default", [x, a], phase="backward")  # the forward output is saved
    (c,) = fusion.analyse(g.graph)["chains"]
    assert c["intermediate_bytes"] == 0


def _kernels(graph: StepGraph, phase: str) -> list[fusion.Kernel]:
    return fusion.predict(graph)[phase]


def _ops(graph: StepGraph, idxs: list[int]) -> list[str]:
    return [graph.nodes[i].op_short for i in idxs]


def test_add_of_a_matmul_result_folds_into_the_extern_call():
    # Inductor's post-grad pattern rewrites add(mm(a, b), c) into addmm(c, a, b) (a weight used twice)
    g = G()
    a, b, c = g.input((64, 48)), g.input((48, 64)), g.input((64, 64))
    m = g.op("aten.mm.default", [a, b], (64, 64))
    g.op("aten.add.Tensor", [c, m])
    ks = _kernels(g.graph, "forward")
    assert [(k.generated, _ops(g.graph, k.nodes)) for k in ks] == [(False, ["mm", "add"])]


def test_add_after_a_reshaped_matmul_result_stays_a_kernel():
    g = G()
    a, b, c = g.input((48, 64)), g.input((64, 64)), g.input((4, 12, 64))
    m = g.op("aten.mm.default", [a, b], (48, 64))
    v = g.op("aten.view.default", [m], (4, 12, 64), view=True)
    g.op("aten.add.Tensor", [c, v], (4, 12, 64))
    assert generated(g.graph) == [["add"]]


def test_add_of_a_matmul_result_stays_apart_on_gpu_when_only_pointwise_reads_it():
    g = G()
    a, b, c = (g.input(s, device="cuda:0") for s in ((64, 48), (48, 64), (64, 64)))
    m = g.op("aten.mm.default", [a, b], (64, 64), device="cuda:0")
    s_ = g.op("aten.add.Tensor", [c, m], device="cuda:0")
    g.op("aten.relu.default", [s_], device="cuda:0")
    assert generated(g.graph) == [["add", "relu"]]


def _linear_tanh_step(read_by_extern: bool) -> tuple[G, int, int]:
    """x @ w -> tanh -> (sum | mm); backward: tanh_backward(grad, tanh_out)."""
    g = G()
    x, w = g.input((64, 32)), g.input((32, 32))
    h = g.op("aten.mm.default", [x, w], (64, 32))
    t = g.op("aten.tanh.default", [h])
    tanh_idx = len(g.graph.nodes) - 1
    if read_by_extern:
        g.op("aten.mm.default", [t, w], (64, 32))
    else:
        g.op("aten.sum.default", [t], ())
    grad = g.input((64, 32))
    if read_by_extern:  # the weight gradient of the second matmul reads the tanh output
        g.op("aten.mm.default", [t, grad], (32, 32), phase="backward", fwd=tanh_idx + 1)
    g.op("aten.tanh_backward.default", [grad, t], phase="backward", fwd=tanh_idx)
    return g, tanh_idx, len(g.graph.nodes) - 1


def test_pointwise_op_on_a_matmul_output_is_recomputed_in_the_backward_kernel_that_reads_it():
    g, tanh_idx, bwd_idx = _linear_tanh_step(read_by_extern=False)
    (k,) = [k for k in _kernels(g.graph, "backward") if bwd_idx in k.nodes]
    assert k.also == [tanh_idx]
    # recomputed work is listed, not counted as an eager launch
    assert fusion.analyse(g.graph)["eager_kernels"]["backward"] == 1


def test_value_saved_for_a_backward_matmul_is_not_recomputed():
    g, _, bwd_idx = _linear_tanh_step(read_by_extern=True)
    (k,) = [k for k in _kernels(g.graph, "backward") if bwd_idx in k.nodes]
    assert k.also == []


def test_chain_over_saved_values_is_recomputed_whole():
    # cnn: relu(batch_norm(conv)); the conv output is saved for batch norm's backward anyway
    g = G()
    x, w = g.input((8, 3, 16, 16)), g.input((16, 3, 3, 3))
    c = g.op("aten.convolution.default", [x, w], (8, 16, 16, 16))
    bn = g.op("aten.native_batch_norm.default", [c], (8, 16, 16, 16))
    r = g.op("aten.relu.default", [bn])
    g.op("aten.mean.dim", [r], (8, 16, 1, 1))
    grad = g.input((8, 16, 16, 16))
    tb = g.op("aten.threshold_backward.default", [grad, r], phase="backward", fwd=2)
    g.op("aten.native_batch_norm_backward.default", [tb, c], (8, 16, 16, 16), phase="backward", fwd=1)
    k = next(k for k in _kernels(g.graph, "backward") if 4 in k.nodes)
    assert _ops(g.graph, sorted(k.also)) == ["native_batch_norm", "relu"]
    fwd = _kernels(g.graph, "forward")
    assert fwd
    assert all(not k.also for k in fwd)


def test_mask_of_threshold_backward_is_computed_in_the_forward():
    # relu on a matmul output that nothing saves: the partitioner saves the boolean mask instead
    g = G()
    x, w = g.input((64, 32)), g.input((32, 128))
    h = g.op("aten.mm.default", [x, w], (64, 128))
    r = g.op("aten.relu.default", [h])
    g.op("aten.sum.default", [r], ())
    grad = g.input((64, 128))
    g.op("aten.threshold_backward.default", [grad, r], phase="backward", fwd=1)
    relu_kernel = next(k for k in _kernels(g.graph, "forward") if 1 in k.nodes)
    assert _ops(g.graph, relu_kernel.also) == ["threshold_backward"]
    bwd = _kernels(g.graph, "backward")
    assert bwd
    assert all(not k.also for k in bwd)


def test_backward_work_that_reads_no_gradient_moves_to_the_forward():
    # pow(x, 2)'s backward: 2 * x reads only forward values; grad * (2 * x) reads the gradient
    g = G()
    x, y = g.input((16,)), g.input((16,))
    d = g.op("aten.sub.Tensor", [x, y])
    g.op("aten.pow.Tensor_Scalar", [d])
    grad = g.input((16,))
    p = g.op("aten.pow.Tensor_Scalar", [d], phase="backward", fwd=1)
    two_x = g.op("aten.mul.Scalar", [p], phase="backward", fwd=1)
    g.op("aten.mul.Tensor", [grad, two_x], phase="backward", fwd=1)
    assert generated(g.graph, "forward") == [["sub", "pow", "pow", "mul"]]
    assert generated(g.graph, "backward") == [["mul"]]


def test_tangent_free_part_of_loss_backward_is_listed_in_the_forward_kernel():
    g = G()
    x, w, y = g.input((64, 32)), g.input((32, 32)), g.input((64, 32))
    h = g.op("aten.mm.default", [x, w], (64, 32))
    g.op("aten.mse_loss.default", [h, y], ())
    grad = g.input(())
    g.op("aten.mse_loss_backward.default", [grad, h, y], (64, 32), phase="backward", fwd=1)
    (k,) = [k for k in _kernels(g.graph, "forward") if k.generated]
    assert _ops(g.graph, k.nodes + k.also) == ["mse_loss", "mse_loss_backward"]


def _with_outputs(g: G, storage: int, shapes: list[tuple[int, ...]]) -> list[int]:
    """Give the node that wrote ``storage`` more outputs (layer norm's backward: grad_input, grad_weight,
    grad_bias); their storages."""
    node = g.graph.nodes[g.writer[storage]]
    extra = [g.input(s) for s in shapes]
    for sid in extra:
        g.writer[sid] = node.idx
    node.outputs = node.outputs + tuple(g.meta[sid] for sid in extra)
    return extra


def _shared_layer_norm_backward() -> tuple[G, list[int], list[int]]:
    """The same LayerNorm(64) (and Linear) applied twice; backward of the second call, its linear's
    input- and weight-gradient mms, then the first call; weight/bias gradients accumulated with adds."""
    g = G()
    w, wl = g.input((64,)), g.input((64, 64))
    grad = g.input((48, 64))
    x1, x2 = g.input((48, 64)), g.input((48, 64))
    lnb2 = g.op("aten.native_layer_norm_backward.default", [grad, x2, w], (48, 64), phase="backward", fwd=None)
    gw2, gb2 = _with_outputs(g, lnb2, [(64,), (64,)])
    gi = g.op("aten.mm.default", [lnb2, wl], (48, 64), phase="backward")
    g.op("aten.mm.default", [lnb2, x1], (64, 64), phase="backward")  # weight gradient: not needed below
    h = g.op("aten.add.Tensor", [gi, lnb2], phase="backward")
    lnb1 = g.op("aten.native_layer_norm_backward.default", [h, x1, w], (48, 64), phase="backward")
    gw1, gb1 = _with_outputs(g, lnb1, [(64,), (64,)])
    a1 = g.op("aten.add.Tensor", [gw2, gw1], (64,), phase="backward")
    a2 = g.op("aten.add.Tensor", [gb2, gb1], (64,), phase="backward")
    g.op("aten.mm.default", [lnb1, wl], (48, 64), phase="backward")
    idx = {s: g.writer[s] for s in (lnb2, lnb1, a1, a2)}
    return g, [idx[lnb2], idx[lnb1]], [idx[a1], idx[a2]]


def test_column_reductions_of_a_shared_layer_norm_are_a_kernel_of_their_own():
    # Inductor fuses both calls' weight/bias column sums with their accumulation adds; that node is
    # scheduled right after the input-gradient mm, before the weight-gradient mm, which ends a CPU kernel
    g, (lnb2, lnb1), adds = _shared_layer_norm_backward()
    ks = [k for k in _kernels(g.graph, "backward") if k.generated]
    # (the add of the input-gradient mm folds into an addmm: 2-D shapes here)
    assert [sorted(k.nodes) for k in ks] == [[lnb2], adds, [lnb1]]
    assert ks[1].also == [lnb2, lnb1]


def test_column_reductions_stay_with_the_row_part_when_no_extern_sits_between():
    g, (lnb2, lnb1), adds = _shared_layer_norm_backward()
    g.graph.nodes[lnb2 + 2].op = "aten.sum.dim_IntList"  # no weight-gradient mm: nothing to split at
    g.graph.nodes[lnb2 + 2].outputs = (g.graph.nodes[lnb2 + 2].outputs[0]._replace(shape=(64,)),)
    ks = [k for k in _kernels(g.graph, "backward") if k.generated]
    assert not any(k.note and "column" in k.note for k in ks)
    assert any(set(adds) <= set(k.nodes) and lnb1 in k.nodes for k in ks)


def test_value_leaving_a_graph_at_item_gets_its_zero_gradient_backward():
    # relu(x @ w) feeds the loss; mean().abs().mul(10).clamp(1, 3).item() leaves the graph: AOTAutograd
    # differentiates it with a zero tangent, fused into relu's backward kernel
    g = G()
    x, w = g.input((48, 16)), g.input((16, 64))
    h = g.op("aten.mm.default", [x, w], (48, 64))
    r = g.op("aten.relu.default", [h])
    m = g.op("aten.mean.default", [r], ())
    a = g.op("aten.abs.default", [m])
    s = g.op("aten.mul.Tensor", [a])
    c = g.op("aten.clamp.default", [s])
    g.op("aten._local_scalar_dense.default", [c], ())
    g.op("aten.sum.default", [r], ())
    grad = g.input((48, 64))
    tb = g.op("aten.threshold_backward.default", [grad, r], phase="backward", fwd=1)
    k = next(k for k in _kernels(g.graph, "backward") if g.writer[tb] in k.nodes)
    assert set(k.extra) == {"add", "expand", "div", "sgn", "mul", "ge", "le", "logical_and", "where"}
    # clamp reads its input (mul of abs): recomputed; abs reads the mean, a reduction's output: saved
    assert _ops(g.graph, sorted(k.also)) == ["abs", "mul"]
    assert fusion.analyse(g.graph)["predicted_kernels"]["backward"] == 1


def test_branch_with_an_op_outside_the_formula_table_is_left_alone():
    g = G()
    x, w = g.input((48, 16)), g.input((16, 64))
    h = g.op("aten.mm.default", [x, w], (48, 64))
    r = g.op("aten.relu.default", [h])
    m = g.op("aten.logsumexp.default", [r], ())
    g.op("aten._local_scalar_dense.default", [m], ())
    g.op("aten.sum.default", [r], ())
    grad = g.input((48, 64))
    g.op("aten.threshold_backward.default", [grad, r], phase="backward", fwd=1)
    bwd = _kernels(g.graph, "backward")
    assert bwd
    assert all(not k.extra for k in bwd)


def test_bias_gradient_sums_of_a_shared_linear_join_the_later_calls_kernel():
    # both calls' bias-gradient column sums and their accumulation add fuse into one node that runs
    # with the kernel computing the later sum's input (not the next kernel, after the matmuls)
    g = G()
    w, x1 = g.input((64, 64)), g.input((48, 64))
    grad, t1, t2 = g.input((48, 64)), g.input((48, 64)), g.input((48, 64))
    g2 = g.op("aten.tanh_backward.default", [grad, t2], phase="backward")
    s2 = g.op("aten.sum.dim_IntList", [g2], (64,), phase="backward")
    gi = g.op("aten.mm.default", [g2, w], (48, 64), phase="backward")
    g.op("aten.mm.default", [g2, x1], (64, 64), phase="backward")
    h = g.op("aten.mul.Tensor", [gi, t2], phase="backward")
    g1 = g.op("aten.tanh_backward.default", [h, t1], phase="backward")
    s1 = g.op("aten.sum.dim_IntList", [g1], (64,), phase="backward")
    acc = g.op("aten.add.Tensor", [s2, s1], (64,), phase="backward")
    ks = [sorted(_ops(g.graph, k.nodes)) for k in _kernels(g.graph, "backward") if k.generated]
    assert ks == [["tanh_backward"], ["add", "mul", "sum", "sum", "tanh_backward"]]
    assert {g.writer[s] for s in (s1, s2, acc)} <= set(
        next(k for k in _kernels(g.graph, "backward") if g.writer[g1] in k.nodes).nodes)


def test_residual_add_fuses_into_the_layer_norm_backward_that_reads_it():
    # a bias-gradient sum and the residual-gradient add become ready after the same mm; the add is the
    # prologue of the layer-norm backward that reads it, not a horizontal partner of the sum
    g = G()
    w = g.input((64, 64))
    grad, resid, x = g.input((256, 64)), g.input((256, 64)), g.input((256, 64))
    d = g.op("aten.mul.Tensor", [grad, x], phase="backward")
    gi = g.op("aten.mm.default", [d, w], (256, 64), phase="backward")
    g.op("aten.sum.dim_IntList", [d], (64,), phase="backward")
    v = g.op("aten.view.default", [gi], (4, 64, 64), phase="backward", view=True)
    r3 = g.op("aten.view.default", [resid], (4, 64, 64), phase="backward", view=True)
    a = g.op("aten.add.Tensor", [r3, v], (4, 64, 64), phase="backward")
    g.op("aten.native_layer_norm_backward.default", [a, x], (4, 64, 64), phase="backward")
    ks = [sorted(_ops(g.graph, k.nodes)) for k in _kernels(g.graph, "backward") if k.generated]
    assert ["add", "native_layer_norm_backward"] in ks
    assert ["sum"] in ks


def test_embedding_backward_scatter_is_generated_in_the_kernel_of_its_gradient():
    # CPU, float32: embedding_dense_backward decomposes to new_zeros + index_put(accumulate=True), which
    # Inductor generates as an atomic-add scatter inside the kernel of the nodes around it
    g = G()
    grad, x = g.input((4, 64, 128)), g.input((4, 64, 128))
    idx = g.input((4, 64), dtype="int64")
    d = g.op("aten.mul.Tensor", [grad, x], phase="backward")
    g.op("aten.embedding_dense_backward.default", [d, idx], (512, 128), phase="backward")
    assert generated(g.graph, "backward") == [["mul", "embedding_dense_backward"]]


@pytest.mark.parametrize("index_dtype, device", [("bool", "cpu"), ("int64", "cuda")])
def test_scatter_that_falls_back_or_runs_on_a_gpu_stays_a_kernel_of_its_own(index_dtype, device):
    g = G()
    base, v = g.input((64, 32), device=device), g.input((64, 32), device=device)
    idx = g.input((64, 32) if index_dtype == "bool" else (64,), dtype=index_dtype, device=device)
    a = g.op("aten.relu.default", [g.op("aten.mul.Tensor", [v, v], device=device)], device=device)
    g.op("aten.index_put.default", [base, idx, a], device=device)
    assert generated(g.graph) == [["mul", "relu"], ["index_put"]]
    if index_dtype == "bool":  # the same on a CPU with an integer index: generated in the kernel
        g = G()
        base, v, idx = g.input((64, 32)), g.input((64, 32)), g.input((64,), dtype="int64")
        a = g.op("aten.relu.default", [g.op("aten.mul.Tensor", [v, v])])
        g.op("aten.index_put.default", [base, idx, a])
        assert generated(g.graph) == [["mul", "relu", "index_put"]]
