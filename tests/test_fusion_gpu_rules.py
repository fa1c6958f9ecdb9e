"""The ``cuda`` target's device-dependent rules: what Inductor does on a real GPU (a named one, ``GpuSpec.cpu_tensors``
False) and not in the check on this machine (its Triton scheduler run on CPU tensors, ``benchmarks/fusion_vs_inductor.py``
``harness_gpu``). Each rule is pinned on a small graph for both specs: the GPU's answer, and the harness's unchanged."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
from graphbuild import G

from gprof.analyses import fusion
from gprof.analyses.gpu_specs import GpuSpec, gpu_spec
from gprof.analyses.triton_rules import COLUMN_PART, SECOND_STAGE, TritonRules, channels_last
from gprof.graph.model import StepGraph

#: what ``harness_gpu()`` builds: Triton on CPU tensors, the CPU count as SMs
HARNESS = dataclasses.replace(gpu_spec(None), name="Triton on this CPU", sm_count=2, cpu_tensors=True)
CONVERSION = "channels-last conversion for convolutions"
BN = "_native_batch_norm_legit_functional"


def kernels(graph: StepGraph, gpu: str | GpuSpec, phase: str = "forward") -> list[list[str]]:
    by = {n.idx: n for n in graph.nodes}
    return [[by[i].op_short for i in k.nodes] or [k.note or "?"] for k in fusion.predict(graph, "cuda", gpu)[phase]
            if k.generated]


def conv_bn_relu(channels: tuple[int, ...], size: int = 16, spatial: int = 32) -> StepGraph:
    """Convolutions (3x3) each followed by a training batch norm and a ReLU."""
    g = G()
    x = g.input((8, channels[0], spatial, spatial))
    for cin, cout in itertools.pairwise(channels):
        w = g.input((cout, cin, 3, 3))
        c = g.op("aten.convolution.default", [x, w], (8, cout, spatial, spatial))
        b = g.op(f"aten.{BN}.default", [c])
        x = g.op("aten.relu.default", [b])
    return g.graph


# --- GraphLowering.decide_layout_opt: channels-last on a GPU only for some convolutions ---------------------------

def test_small_convolutions_keep_their_layout_on_a_gpu_not_in_the_harness():
    graph = conv_bn_relu((3, 16, 32, 32))  # every convolution <= 64 channels in and out: no layout optimisation
    assert CONVERSION not in {k[0] for k in kernels(graph, "H200")}
    assert [k[0] for k in kernels(graph, HARNESS)].count(CONVERSION) == 4  # the input and three weights


def test_decide_layout_opt_conditions():
    g = G()
    x = g.input((8, 128, 16, 16))

    def conv(cin: int, cout: int) -> None:
        g.op("aten.convolution.default", [x, g.input((cout, cin, 3, 3))], (8, cout, 16, 16))

    conv(128, 128)
    assert channels_last(g.graph.nodes)  # a convolution over 64 channels, nothing against it
    conv(128, 32)  # twice as many input as output channels, 3x3: channels-last hurts
    assert not channels_last(g.graph.nodes)
    g.op("aten.relu.default", [x])
    assert not channels_last(g.graph.nodes[:1] + [g.graph.nodes[-1]] * 600)  # >= 300 nodes per convolution
    g2 = G()
    x = g2.input((8, 128, 16, 16))
    g2.op("aten.convolution.default", [x, g2.input((128, 64, 3, 3))], (8, 128, 16, 16))  # 2 groups of 64 channels
    assert not channels_last(g2.graph.nodes)
    assert not channels_last([])
    graph = conv_bn_relu((128, 128), spatial=8)
    assert [k[0] for k in kernels(graph, "H200")].count(CONVERSION) == 2


# --- a batch norm over a contiguous input is one inner reduction with its pointwise part on a GPU -----------------

def test_batch_norm_forward_is_one_kernel_on_a_gpu_statistics_apart_in_the_harness():
    graph = conv_bn_relu((3, 16))
    assert kernels(graph, "H200") == [[BN, "relu"]]
    got = kernels(graph, HARNESS)
    assert got[:2] == [[CONVERSION], [CONVERSION]] and got[-1] == [BN, "relu"]
    assert got[2][0].startswith("batch-norm statistics")


def test_batch_norm_on_channels_last_or_2d_input_keeps_its_statistics_apart_on_a_gpu():
    graph = conv_bn_relu((128, 128), spatial=8)  # channels-last: an outer reduction
    assert any(k[0].startswith("batch-norm statistics") for k in kernels(graph, "H200"))
    g = G()
    h = g.op("aten.relu.default", [g.input((64, 256))])
    g.op(f"aten.{BN}.default", [h])  # BatchNorm1d over [N, C]: reduced over rows, strided
    assert any(k[0].startswith("batch-norm statistics") for k in kernels(g.graph, "H200"))


def test_batch_norm_backward_fuses_its_relu_backward_on_a_gpu():
    g = G()
    x, w = g.input((8, 16, 32, 32)), g.input((16, 16, 3, 3))
    gi = g.op("aten.convolution_backward.default", [g.input((8, 16, 32, 32)), x, w], phase="backward")
    t = g.op("aten.threshold_backward.default", [gi, x], phase="backward")
    g.op("aten.native_batch_norm_backward.default", [t, x], phase="backward")
    assert kernels(g.graph, "H200", "backward") == [["threshold_backward", "native_batch_norm_backward"]]
    harness = kernels(g.graph, HARNESS, "backward")
    assert harness[0] == ["threshold_backward", "native_batch_norm_backward"]
    assert harness[1][0].startswith("batch-norm statistics") and len(harness) > 2


# --- an outer reduction that does not split fuses with the pointwise node writing its input (loop reordering) -----

def relu_backward_then_bias_sum(rows: int, cols: int, through_view: bool = False) -> StepGraph:
    g = G()
    a, w = g.input((rows, cols)), g.input((cols, cols))
    gi = g.op("aten.mm.default", [a, w], (rows, cols), phase="backward")
    shape = (rows // 4, 4, cols) if through_view else (rows, cols)
    gi = g.op("aten.view.default", [gi], shape, phase="backward", view=True) if through_view else gi
    t = g.op("aten.threshold_backward.default", [gi, g.input(shape)], phase="backward")
    t = g.op("aten.view.default", [t], (rows, cols), phase="backward", view=True) if through_view else t
    g.op("aten.sum.dim_IntList", [t], (1, cols), phase="backward")
    return g.graph


def test_bias_gradient_fuses_with_the_relu_backward_on_a_gpu_not_in_the_harness():
    graph = relu_backward_then_bias_sum(64, 512)
    assert kernels(graph, "H200", "backward") == [["threshold_backward", "sum"]]
    assert kernels(graph, HARNESS, "backward") == [["threshold_backward"], ["sum"]]


@pytest.mark.parametrize("rows, cols, view", [(4, 32, False),  # unrolled: fewer than 8 rows
                                              (65536, 64, False),  # split into a partial and a second stage
                                              (64, 512, True)])  # a 3-D write summed as 2-D: no reordering
def test_bias_gradient_stays_apart_when_unrolled_split_or_reshaped(rows, cols, view):
    got = kernels(relu_backward_then_bias_sum(rows, cols, view), "H200", "backward")
    assert got[0] == ["threshold_backward"] and got[1] == ["sum"]
    assert got[2:] == ([[SECOND_STAGE]] if rows == 65536 else [])


# --- a full reduction over fewer than 8 elements is a pointwise node on a GPU -------------------------------------

def test_tiny_full_reduction_is_unrolled_into_the_loss_on_a_gpu():
    g = G()  # (pred.mean() - y.mean()) ** 2 with 16 predictions and 4 targets (the dynamic example's loss)
    m = g.op("aten.mean.default", [g.input((16,))], (1,))
    my = g.op("aten.mean.default", [g.input((4,))], (1,))
    d = g.op("aten.sub.Tensor", [m, my], (1,))
    g.op("aten.pow.Tensor_Scalar", [d], (1,))
    assert kernels(g.graph, "H200") == [["mean", "mean", "sub", "pow"]]
    assert len(kernels(g.graph, HARNESS)) == 2  # reductions of 16 and of 4 elements: two groups


def test_harness_rules_ignore_the_phase():
    rules = TritonRules(HARNESS).for_phase(conv_bn_relu((3, 16)).nodes)
    assert rules.channels_last and not rules.reorderable


# --- a split layer norm backward column part: a second stage per gradient (SM-count dependent) -------------------

def test_split_layer_norm_column_part_has_a_second_stage_per_gradient():
    g = G()
    grad, x, w = g.input((256, 128)), g.input((256, 128)), g.input((128,))
    d = g.op("aten.mul.Tensor", [grad, grad], phase="backward")
    lnb = g.op("aten.native_layer_norm_backward.default", [d, x, w], phase="backward")
    node = g.graph.nodes[g.writer[lnb]]
    node.outputs += (g.meta[g.input((128,))], g.meta[g.input((128,))])
    # 128 columns, far fewer than 132 SMs * 64: split; weight and bias second stages read their own partials
    assert kernels(g.graph, "H200", "backward") == [["mul", "native_layer_norm_backward"], [COLUMN_PART],
                                                     [SECOND_STAGE], [SECOND_STAGE]]
    assert kernels(g.graph, HARNESS, "backward") == [["mul", "native_layer_norm_backward"], [COLUMN_PART]]
    node.outputs = node.outputs[:2]  # a weight gradient only
    assert kernels(g.graph, "H200", "backward")[2:] == [[SECOND_STAGE]]


# --- post_grad.unfuse_bias_add_to_pointwise: on a GPU a Linear's bias add runs in its pointwise user's kernel -------

def _linear_then(op: str, saved_for_backward: bool = False) -> tuple[StepGraph, int]:
    g = G()
    x, w, b = g.input((32, 64)), g.input((64, 16)), g.input((16,))
    out = g.op("aten.addmm.default", [b, x, w], (32, 16))
    g.op(op, [out])
    if saved_for_backward:  # a backward op reads the addmm's own output: a graph output, not a pointwise use
        g.op("aten.tanh_backward.default", [out, out], phase="backward")
    return g.graph, g.writer[out]


@pytest.mark.parametrize("saved", [False, True])
def test_bias_add_of_an_addmm_read_only_pointwise_runs_in_its_users_kernel_on_a_gpu(saved: bool) -> None:
    graph, addmm = _linear_then("aten.relu.default", saved)
    for gpu in ("H200", HARNESS):
        ks = [k for k in fusion.predict(graph, "cuda", gpu)["forward"] if k.generated]
        assert [k.nodes for k in ks] == [[addmm + 1]]  # the count is the same: the mm stays an extern call
        assert (addmm in ks[0].also) == (gpu == "H200" and not saved)
