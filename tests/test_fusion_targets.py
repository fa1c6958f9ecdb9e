"""The fusion target pins: the same small graphs grouped by the C++ rules (``cpu``) and by the Triton
rules (``cuda``), and the Triton rules' pieces (groups, split reductions, the GPU table) on their own."""
from __future__ import annotations

import dataclasses

import pytest

from gprof.analyses import fusion, run_all
from gprof.analyses.gpu_specs import GPUS, GpuSpec, gpu_spec
from gprof.analyses.triton_rules import COLUMN_PART, SECOND_STAGE, Shape, can_fuse, split_factor
from gprof.graph.model import StepGraph
from tests.test_analyses_graphs import G, _shared_layer_norm_backward


def kernels(graph: StepGraph, target: str, phase: str = "forward", gpu: str | GpuSpec | None = None) -> list[list[str]]:
    by = {n.idx: n for n in graph.nodes}
    out = [[by[i].op_short for i in k.nodes] or [k.note or "?"] for k in fusion.predict(graph, target, gpu)[phase]
           if k.generated]
    assert out, "the graph predicts no generated kernel"
    return out


def bias_grad_then_relu_grad() -> StepGraph:
    """A linear's backward on a ReLU: the bias gradient (column sum) and the next ReLU's backward
    become ready after the same matmul."""
    g = G()
    grad, w, mask = g.input((64, 512)), g.input((512, 512)), g.input((64, 512))
    t = g.op("aten.threshold_backward.default", [grad, mask], phase="backward")
    g.op("aten.sum.dim_IntList", [t], (1, 512), phase="backward")
    gi = g.op("aten.mm.default", [t, w], (64, 512), phase="backward")
    t2 = g.op("aten.threshold_backward.default", [gi, mask], phase="backward")
    g.op("aten.sum.dim_IntList", [t2], (1, 512), phase="backward")
    return g.graph


def test_cpu_kernel_group_joins_what_triton_keeps_apart():
    graph = bias_grad_then_relu_grad()
    # C++: the kernel group runs on to the next extern call, so each sum shares the next stage's kernel
    assert kernels(graph, "cpu", "backward") == [["threshold_backward"], ["sum", "threshold_backward", "sum"]]
    # Triton on CPU tensors: a column sum fuses with neither its producer nor unrelated work (an outer reduction)
    cpu_tensors = dataclasses.replace(gpu_spec("H100"), cpu_tensors=True)
    assert sorted(kernels(graph, "cuda", "backward", cpu_tensors)) == [
        ["sum"], ["sum"], ["threshold_backward"], ["threshold_backward"]]
    # on a GPU loop reordering fuses the second sum with its producer (tests/test_fusion_gpu_rules.py); the first
    # ReLU backward reads only graph inputs, so its sum floats to the last stage
    assert sorted(kernels(graph, "cuda", "backward")) == [["sum"], ["threshold_backward"], ["threshold_backward", "sum"]]


def test_softmax_then_loss_is_two_triton_kernels_one_cpu_kernel():
    g = G()
    x, y = g.input((64, 10)), g.input((64,), dtype="int64")
    ls = g.op("aten._log_softmax.default", [x])
    g.op("aten.nll_loss_forward.default", [ls, y], (1,))  # (the builder reads () as "same shape")
    assert kernels(g.graph, "cpu") == [["_log_softmax", "nll_loss_forward"]]
    # row reductions (64, 10) and a reduction over the 64 gathered targets (1, 64): different groups
    assert kernels(g.graph, "cuda") == [["_log_softmax"], ["nll_loss_forward"]]


def test_layer_norm_with_pointwise_prologue_and_epilogue_is_one_kernel_on_both():
    g = G()
    x = g.input((128, 256))
    a = g.op("aten.add.Tensor", [x, x])
    ln = g.op("aten.native_layer_norm.default", [a])
    g.op("aten.relu.default", [ln])
    for target in ("cpu", "cuda"):
        assert kernels(g.graph, target) == [["add", "native_layer_norm", "relu"]]


def test_full_reduction_split_on_a_gpu_adds_a_second_stage():
    g = G()
    x = g.input((1024, 1024))
    s = g.op("aten.mul.Tensor", [x, x])
    g.op("aten.mean.default", [s], (1,))
    assert kernels(g.graph, "cpu") == [["mul", "mean"]]
    assert kernels(g.graph, "cuda", gpu="H100") == [["mul", "mean"], [SECOND_STAGE]]


def test_batch_norm_statistics_are_kernels_of_their_own_on_triton():
    g = G()
    x = g.input((8, 16, 32, 32))
    bn = g.op("aten._native_batch_norm_legit_functional.default", [x])
    g.op("aten.relu.default", [bn])
    assert kernels(g.graph, "cpu") == [["_native_batch_norm_legit_functional", "relu"]]
    # (on CPU tensors; on a GPU a contiguous input is one inner reduction: tests/test_fusion_gpu_rules.py)
    got = kernels(g.graph, "cuda", gpu=dataclasses.replace(gpu_spec("H100"), cpu_tensors=True))
    assert got[-1] == ["_native_batch_norm_legit_functional", "relu"]
    assert got[0][0].startswith("batch-norm statistics") and got[1:-1] == [[SECOND_STAGE]]


def test_default_target_is_the_step_device_and_run_all_takes_target():
    graph = bias_grad_then_relu_grad()
    assert fusion.rules_for(None, graph).target == "cpu"
    out = run_all(graph, target="cuda", gpu="H200")
    assert out["fusion"]["target"] == "cuda"
    assert "H200" in out["fusion"]["roofline"]["device"]
    assert run_all(graph)["fusion"]["target"] == "cpu"
    with pytest.raises(ValueError):
        fusion.rules_for("tpu", graph)


@pytest.mark.parametrize(("a", "b", "fuse"), [
    (Shape(4096, 1, False, False), Shape(4096, 1, False, False), True),     # pointwise, same numel
    (Shape(4096, 1, False, False), Shape(2048, 1, False, False), False),
    (Shape(4096, 1, False, False), Shape(64, 64, True, False), True),       # prologue of a row reduction
    (Shape(64, 1, False, False), Shape(64, 64, True, False), True),         # epilogue
    (Shape(4096, 1, False, False), Shape(64, 64, True, True), False),       # outer reduction: tiling
    (Shape(64, 64, True, False), Shape(64, 64, True, False), True),
    (Shape(64, 64, True, False), Shape(1, 4096, True, False), False),       # reductions of other groups
])
def test_simd_can_fuse(a: Shape, b: Shape, fuse: bool):
    assert can_fuse(a, b) is fuse and can_fuse(b, a) is fuse


def test_split_factor_reads_the_sm_count():
    h100 = gpu_spec("NVIDIA H100 80GB HBM3")
    assert h100.name == "H100"
    assert split_factor(1, 1 << 20, False, h100) > 1      # a full reduction of 1 Mi elements splits
    assert split_factor(1, 4096, False, h100) == 1        # at most 8,192: one kernel
    assert split_factor(16384, 512, False, h100) == 1     # enough outputs for the SMs
    assert split_factor(256, 1024, True, h100) > 1        # a bias gradient over 1,024 rows
    assert split_factor(256, 1024, True, gpu_spec("T4")) > 1
    assert GPUS
    assert all(g.bandwidth_bps > 0 and g.sm_count > 0 and g.launch_ns > 0 for g in GPUS.values())
    with pytest.raises(KeyError):
        gpu_spec("Voodoo 2")


def test_layer_norm_backward_column_part_is_a_triton_kernel_after_the_row_part():
    # triton_rules.apart_kernels: the weight/bias gradients are column sums, group (cols, rows), apart
    # from the row reductions of the input gradient; the C++ kernel group holds both
    g = G()
    grad, x, w = g.input((256, 128)), g.input((256, 128)), g.input((128,))
    d = g.op("aten.mul.Tensor", [grad, grad], phase="backward")
    lnb = g.op("aten.native_layer_norm_backward.default", [d, x, w], phase="backward")
    g.graph.nodes[g.writer[lnb]].outputs += (g.meta[g.input((128,))], g.meta[g.input((128,))])
    assert kernels(g.graph, "cpu", "backward") == [["mul", "native_layer_norm_backward"]]
    # 128 columns, far fewer than an H100's SMs * 64: the outer reduction splits, a second stage per gradient
    assert kernels(g.graph, "cuda", "backward", gpu="H100") == [
        ["mul", "native_layer_norm_backward"], [COLUMN_PART], [SECOND_STAGE], [SECOND_STAGE]]
    assert kernels(g.graph, "cuda", "backward", gpu="L4")[1] == [COLUMN_PART]
    # no weight or bias gradient (elementwise_affine=False): the row part only
    g.graph.nodes[g.writer[lnb]].outputs = g.graph.nodes[g.writer[lnb]].outputs[:1]
    assert kernels(g.graph, "cuda", "backward", gpu="H100") == [["mul", "native_layer_norm_backward"]]


def test_shared_layer_norm_column_reductions_are_one_triton_kernel_after_both_row_parts():
    # both calls' column sums (one group) and their accumulation adds (an epilogue) are one fused node
    # replacing each call's own column kernel, emitted after the kernels it reads
    # (fusion_grouping._split_deferred_column_reductions with apart, triton_rules.after_dependencies)
    g, (lnb2, lnb1), adds = _shared_layer_norm_backward()
    ks = [k for k in fusion.predict(g.graph, "cuda", "H100")["backward"] if k.generated]
    assert [k.nodes for k in ks] == [[lnb2], [lnb1], adds]
    assert ks[-1].also == [lnb2, lnb1] and COLUMN_PART not in {k.note for k in ks}


def _packed_gradient(join: str) -> StepGraph:
    """Two slices' gradients (bmm outputs, one scaled) joined into a packed in-projection gradient."""
    g = G()
    a, b, w = g.input((8, 64, 32)), g.input((8, 64, 32)), g.input((64, 192))
    ga = g.op("aten.bmm.default", [a, a], (8, 64, 32), phase="backward")
    gb = g.op("aten.bmm.default", [b, b], (8, 64, 32), phase="backward")
    ca = g.op("aten.clone.default", [ga], phase="backward")
    cb = g.op("aten.mul.Tensor", [gb, gb], phase="backward")
    if join == "cat":
        packed = g.op("aten.cat.default", [ca, cb], (8, 64, 64), phase="backward")
    else:
        sa = g.op("aten.select_backward.default", [ca], (2, 8, 64, 32), phase="backward")
        sb = g.op("aten.select_backward.default", [cb], (2, 8, 64, 32), phase="backward")
        packed = g.op("aten.add.Tensor", [sa, sb], phase="backward")
    g.op("aten.mm.default", [packed, w], (512, 192), phase="backward")
    return g.graph


def test_single_use_pointwise_is_inlined_into_its_reader_on_triton():
    # triton_lowering.inline_single_use: the slices' clone/mul are unrealised ir.Pointwise nodes that the packed
    # gradient's select_backward/add inline, one kernel though their sizes differ
    assert kernels(_packed_gradient("select_backward"), "cuda", "backward", gpu="H100") == [
        ["clone", "mul", "select_backward", "select_backward", "add"]]


def test_cat_inputs_write_their_slices_on_a_cpu_device():
    # triton_lowering.concat_slices: the cat lowering is a ConcatKernel on a CPU device (each input's kernel
    # writes its slice and does the cat's work for it); on a GPU, pointwise_cat inlines the inputs
    graph = _packed_gradient("cat")
    harness = dataclasses.replace(gpu_spec("H100"), cpu_tensors=True)
    by = {n.idx: n for n in graph.nodes}
    ks = [k for k in fusion.predict(graph, "cuda", harness)["backward"] if k.generated]
    assert [[by[i].op_short for i in k.nodes + k.also] for k in ks] == [["clone", "cat"], ["mul", "cat"]]
    assert kernels(graph, "cuda", "backward", gpu="H100") == [["clone", "mul", "cat"]]


def test_dropout_mask_fuses_into_the_softmax_kernel_it_multiplies():
    # triton_lowering.merge_producer_kernels: the mask reads nothing of the graph; the scheduler fuses it with
    # the (softmax + mul) node that reads it (TritonRules.merges)
    g = G()
    x = g.input((8, 4, 64, 64))
    sm = g.op("aten._softmax.default", [x])
    mask = g.op("aten.bernoulli_.float", [g.input((8, 4, 64, 64))])
    g.op("aten.mul.Tensor", [sm, mask])
    assert kernels(g.graph, "cuda", gpu="H100") == [["_softmax", "bernoulli_", "mul"]]


def test_gradient_accumulation_add_folds_into_addmm_unless_a_gpu_prefers_it_unfused():
    # fusion_grouping._addmm_folds: should_prefer_unfused_addmm keeps add(mm, c) apart only on a GPU device and only
    # when every user is pointwise; a sum nothing reads is a graph output (the accumulated weight gradient)
    g = G()
    a, b = g.input((64, 48)), g.input((48, 64))
    m1 = g.op("aten.mm.default", [a, b], (64, 64), phase="backward")
    m2 = g.op("aten.mm.default", [a, b], (64, 64), phase="backward")
    g.op("aten.add.Tensor", [m1, m2], phase="backward")
    harness = dataclasses.replace(gpu_spec("H100"), cpu_tensors=True)
    for gpu in ("H100", harness):
        assert [k.generated for k in fusion.predict(g.graph, "cuda", gpu)["backward"]] == [False, False]
    g = G()
    m1 = g.op("aten.mm.default", [g.input((64, 48)), g.input((48, 64))], (64, 64), phase="backward")
    s = g.op("aten.add.Tensor", [m1, g.input((64, 64))], phase="backward")
    g.op("aten.relu.default", [s], phase="backward")  # a pointwise user: a GPU keeps this add unfused
    assert kernels(g.graph, "cuda", "backward", gpu="H100") == [["add", "relu"]]
    assert kernels(g.graph, "cuda", "backward", gpu=harness) == [["relu"]]


def _packed_projection(extern_reader: bool = True) -> tuple[StepGraph, dict[str, int]]:
    """A packed projection's bias ``add`` and ``clone`` (one node after inlining) read as three slices:
    q and k each scaled by a ``mul``, v (optionally) by a ``bmm``."""
    g = G()
    x, b = g.input((3, 8, 64, 32)), g.input((3, 8, 64, 32))
    a = g.op("aten.add.Tensor", [x, b])
    c = g.op("aten.clone.default", [a])
    q, k, v = (g.op("aten.select.int", [c], (8, 64, 32), view=True) for _ in range(3))
    mq = g.op("aten.mul.Tensor", [q])
    mk = g.op("aten.mul.Tensor", [k])
    s = g.op("aten.bmm.default", [mq, mk], (8, 64, 64))
    if extern_reader:
        g.op("aten.bmm.default", [s, v], (8, 64, 32))
    return g.graph, {"mq": g.writer[mq], "mk": g.writer[mk], "clone": g.writer[c]}


def _work(graph: StepGraph, target: str, gpu: str | GpuSpec | None = None) -> list[list[str]]:
    by = {n.idx: n for n in graph.nodes}
    return [sorted(by[i].op_short for i in k.nodes + k.also)
            for k in fusion.predict(graph, target, gpu)["forward"] if k.generated]


def test_shared_pointwise_is_recomputed_by_each_reader_before_an_extern_stores_it():
    # triton_lowering.recompute_shared_pointwise: three users and two buffers read (realize_reads_threshold 4):
    # StorageBox.mark_reuse keeps it unrealised, so each mul's kernel recomputes it (Kernel.also), the slices
    # share no MemoryDep (no horizontal fusion), and v's bmm stores it (realize_input): three kernels
    graph, idx = _packed_projection()
    for gpu in ("H100", dataclasses.replace(gpu_spec("H100"), cpu_tensors=True)):
        ks = [k for k in fusion.predict(graph, "cuda", gpu)["forward"] if k.generated]
        assert sorted(_work(graph, "cuda", gpu)) == [["add", "clone"], ["add", "clone", "mul"],
                                                     ["add", "clone", "mul"]]
        assert sorted(k.nodes for k in ks if idx["mq"] in k.nodes or idx["mk"] in k.nodes) == [[idx["mq"]], [idx["mk"]]]
    # the C++ kernel group runs everything up to the first bmm: one kernel, unchanged
    assert kernels(graph, "cpu") == [["add", "clone", "mul", "mul"]]


def test_shared_pointwise_without_an_extern_reader_has_no_kernel_of_its_own():
    graph, _ = _packed_projection(extern_reader=False)
    assert sorted(_work(graph, "cuda", "H100")) == [["add", "clone", "mul"], ["add", "clone", "mul"]]


def test_shared_pointwise_reading_more_than_four_buffers_is_stored_once():
    # should_realize_on_reuse: num_reads() > realize_reads_threshold realises it; both readers load it
    # (same buffer, same index: one horizontal kernel)
    g = G()
    xs = [g.input((64, 256)) for _ in range(5)]
    t = g.op("aten.add.Tensor", [xs[0], xs[1]])
    for x in xs[2:]:
        t = g.op("aten.add.Tensor", [t, x])
    g.op("aten.relu.default", [t])
    g.op("aten.neg.default", [t])
    assert kernels(g.graph, "cuda", gpu="H100") == [["add", "add", "add", "add", "relu", "neg"]]
    two = G()
    a = two.op("aten.add.Tensor", [two.input((64, 256)), two.input((64, 256))])
    two.op("aten.relu.default", [a])
    two.op("aten.neg.default", [a])
    # two buffers: recomputed by both readers, whose kernels then read the same two inputs (one horizontal kernel)
    assert _work(two.graph, "cuda", "H100") == [["add", "neg", "relu"]]


def _layer_norm_after_residual(transposed: bool) -> StepGraph:
    """``norm(x + dropout(y))`` with ``y`` an extern's output read as is or through ``transpose(0, 1)``
    (the transformer example's first layer norm: attention output in (seq, batch) order)."""
    g = G()
    x, w = g.input((8, 128, 256)), g.input((256, 256))
    y = g.op("aten.mm.default", [g.input((1024, 256)), w], (1024, 256))
    y = g.op("aten.view.default", [y], (128, 8, 256) if transposed else (8, 128, 256), view=True)
    if transposed:
        y = g.op("aten.transpose.int", [y], (8, 128, 256), view=True)
    mask = g.op("aten.empty_like.default", [y])
    bern = g.op("aten.bernoulli_.float", [mask], view=True)  # in place: same storage, now written by it
    g.writer[bern] = len(g.graph.nodes) - 1
    d = g.op("aten.mul.Tensor", [y, bern])
    r = g.op("aten.add.Tensor", [x, d])
    g.op("aten.native_layer_norm.default", [r, g.input((256,)), g.input((256,))])
    return g.graph


def test_layer_norm_mean_reading_mostly_permuted_buffers_is_its_own_kernel_on_a_cpu_device():
    # triton_lowering.two_step_variance_means: on a CPU device var_mean over <= 1,024 elements is two-step
    # (use_two_step_variance); the mean's buffer follows the transposed order of most of its reads
    # (the attention output and the mask allocated like it) and a CPU node's loops are never reordered
    # to match its readers': the prologue and the mean run in a kernel before the normalisation's
    harness = dataclasses.replace(gpu_spec("H100"), cpu_tensors=True)
    graph = _layer_norm_after_residual(transposed=True)
    assert kernels(graph, "cuda", gpu=harness) == [["bernoulli_", "mul", "add"], ["native_layer_norm"]]
    assert _work(graph, "cuda", harness) == [["add", "bernoulli_", "mul", "native_layer_norm"],
                                             ["add", "mul", "native_layer_norm"]]
    # a GPU computes fp32 statistics with Welford (one reduction), and nothing is transposed: one kernel
    one = [["bernoulli_", "mul", "add", "native_layer_norm"]]
    assert kernels(graph, "cuda", gpu="H100") == one
    assert kernels(_layer_norm_after_residual(transposed=False), "cuda", gpu=harness) == one
    # the C++ backend: unchanged, one kernel group
    assert kernels(graph, "cpu") == one
