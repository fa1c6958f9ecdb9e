"""Acceptance (issue 2, "It survives"): awkward-but-common training code runs unchanged under
``gprof.profile`` and is recorded sensibly. Each test runs the same seeded code with and without
the profile, compares results bit for bit, and checks the recorded graph's phases, links and modules."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from conftest import Net, bitwise_equal, seeded_net
from torch import nn
from torch.utils._pytree import tree_flatten

import gprof
from gprof.graph.model import StepGraph


def grads(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def check_same_and_record(run: Callable[[], Any], tmp_path) -> StepGraph:
    """``run`` builds its seeded state and returns what it computed; returns the recorded step."""
    expected = run()
    with gprof.profile(logdir=tmp_path, run="survive") as prof:
        got = run()
    exp_leaves, exp_spec = tree_flatten(expected)
    got_leaves, got_spec = tree_flatten(got)
    assert exp_spec == got_spec
    for i, (a, b) in enumerate(zip(exp_leaves, got_leaves)):
        if isinstance(a, torch.Tensor):
            assert bitwise_equal(a, b), f"result leaf {i} differs under the profile"
        else:
            assert a == b, f"result leaf {i}: {a!r} vs {b!r}"
    assert len(prof.graphs) == 1, "no prof.step() calls: the whole block is one step"
    return prof.graphs[0]


def linked(g: StepGraph) -> float:
    bw = g.by_phase("backward")
    return sum(n.fwd is not None or n.param is not None for n in bw) / max(1, len(bw))


def modules_of(g: StepGraph, phase: str) -> set[str | None]:
    return {n.module for n in g.by_phase(phase)}


def test_no_grad(tmp_path) -> None:
    def run() -> Any:
        model, x = seeded_net()
        with torch.no_grad():
            out = model(x)
        return out, grads(model)

    g = check_same_and_record(run, tmp_path)
    assert not g.by_phase("backward")
    assert {"embed", "block.fc1", "block.act", "block.fc2", "head"} <= modules_of(g, "forward")


def test_inference_mode(tmp_path) -> None:
    def run() -> Any:
        model, x = seeded_net()
        with torch.inference_mode():
            out = model(x)
        return out.clone()

    g = check_same_and_record(run, tmp_path)
    assert not g.by_phase("backward")
    fwd = g.by_phase("forward")
    assert {"embed", "block.fc1", "head"} <= {n.module for n in fwd}
    assert all(n.outputs[0].storage != 0 for n in fwd if n.outputs), "inference tensors lost their storage ids"


def test_autocast_cpu_bf16(tmp_path) -> None:
    def run() -> Any:
        model, x = seeded_net()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(x).float().pow(2).mean()
        loss.backward()
        return loss, grads(model)

    g = check_same_and_record(run, tmp_path)
    fc1 = [n for n in g.by_phase("forward") if n.module == "block.fc1" and n.op == "aten.addmm.default"]
    assert fc1 and fc1[0].outputs[0].dtype == "bfloat16", "autocast's bf16 matmul was not recorded as bf16"
    assert any(n.op == "aten._to_copy.default" for n in g.by_phase("forward")), "autocast casts missing"
    assert linked(g) >= 0.99


class CheckpointedNet(Net):
    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        self.reentrant = reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        h = torch.relu(self.embed(x))
        return self.head(checkpoint(self.block, h, use_reentrant=self.reentrant))


@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_checkpoint(tmp_path, reentrant: bool) -> None:
    def run() -> Any:
        torch.manual_seed(0)
        model, x = CheckpointedNet(reentrant), torch.randn(4, 8)
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss, grads(model)

    g = check_same_and_record(run, tmp_path)
    fwd_mm = [n for n in g.by_phase("forward") if n.module == "block.fc1" and n.op == "aten.addmm.default"]
    # the block's forward runs again inside backward to rebuild what checkpoint did not save; those
    # ops are phase recompute, in block.fc1/block.act (the module stack says so), whatever backward node
    # triggered them (non-reentrant checkpoint stops recomputing once fc2's input exists; reentrant reruns
    # all of block)
    re_mm = [n for n in g.by_phase("recompute") if n.op == "aten.addmm.default"]
    assert [n.module for n in re_mm] == (["block.fc1", "block.fc2"] if reentrant else ["block.fc1"]), \
        f"recomputed addmm attributed to {[n.module for n in re_mm]}"
    assert len(fwd_mm) == 1
    re_gelu = [n for n in g.by_phase("recompute") if n.op == "aten.gelu.default"]
    assert len(re_gelu) == 1 and re_gelu[0].module == "block.act", [n.module for n in re_gelu]
    # every backward node links, including the AccumulateGrad that reentrant checkpoint's inner
    # backward runs into a detached copy of its input (a leaf that is not a parameter)
    unlinked = [n.key for n in g.by_phase("backward") if n.fwd is None and n.param is None]
    assert not unlinked, unlinked
    assert {"block.fc1", "block.fc2", "embed", "head"} <= modules_of(g, "backward")
    # the recomputed activation is what fc2's weight gradient reads: dataflow stays connected
    assert any(e.src == re_gelu[0].idx for e in g.edges), "recomputed gelu output feeds nothing"


def test_double_backward_and_retain_graph(tmp_path) -> None:
    def run() -> Any:
        model, x = seeded_net()
        x.requires_grad_(True)
        loss = model(x).pow(2).mean()
        (gx,) = torch.autograd.grad(loss, x, create_graph=True, retain_graph=True)
        penalty = gx.pow(2).sum()
        total = loss + penalty
        total.backward(retain_graph=True)
        first = grads(model)
        total.backward()  # again through the retained graph: grads accumulate
        return loss, penalty, first, grads(model)

    g = check_same_and_record(run, tmp_path)
    bw = g.by_phase("backward")
    assert linked(g) >= 0.99
    # the penalty's backward runs through nodes that the first (create_graph) backward created
    assert any(n.fwd is not None and g.nodes[n.fwd].phase == "backward" for n in bw), \
        "no backward node links to a node recorded in the create_graph backward"
    acc = [n for n in bw if n.param == "block.fc1.weight"]
    assert len(acc) == 2, f"expected fc1.weight accumulated by both backward calls, got {len(acc)}"


class ScaledTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        y = torch.tanh(x) * scale
        ctx.save_for_backward(y)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        return gy * (ctx.scale - y * y / ctx.scale), None


class CustomAct(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ScaledTanh.apply(x, 2.0)


def test_custom_autograd_function(tmp_path) -> None:
    def run() -> Any:
        model, x = seeded_net()
        model.block.act = CustomAct()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss, grads(model)

    g = check_same_and_record(run, tmp_path)
    custom = [n for n in g.by_phase("backward") if n.grad_fn and "ScaledTanh" in n.grad_fn]
    assert custom, "the custom Function's backward ops were not recorded with its autograd node"
    for n in custom:
        assert n.module == "block.act", f"{n.key}: custom backward attributed to {n.module!r}"
        assert n.fwd is not None and g.nodes[n.fwd].module == "block.act"
    # the saved output comes back in backward as a new tensor on the same storage: linked by storage
    fwd_mul = next(n for n in g.by_phase("forward") if n.module == "block.act" and n.op == "aten.mul.Tensor")
    assert any(e.src == fwd_mul.idx and g.nodes[e.dst].phase == "backward" for e in g.edges)
    assert linked(g) >= 0.99


def test_module_hooks(tmp_path) -> None:
    calls: list[str] = []

    def run() -> Any:
        model, x = seeded_net()
        model.block.fc1.register_forward_pre_hook(lambda m, a: (a[0] * 0.5,))
        model.block.register_forward_hook(lambda m, a, out: out + 1.0)
        model.head.register_full_backward_hook(lambda m, gi, go: (calls.append("bw"), None)[1])
        model.embed.weight.register_hook(lambda grad: grad * 3.0)
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss, grads(model)

    g = check_same_and_record(run, tmp_path)
    assert calls == ["bw", "bw"], "the full backward hook must fire once per run"
    fwd = g.by_phase("forward")
    # the pre-hook's multiply runs as fc1 is entered, the post-hook's add as block returns
    assert any(n.module == "block.fc1" and n.op == "aten.mul.Tensor" for n in fwd)
    assert any(n.module == "block" and n.op == "aten.add.Tensor" for n in fwd)
    assert linked(g) >= 0.99
    assert {"block.fc1", "head", "embed"} <= modules_of(g, "backward")


def test_torch_compiled_submodule(tmp_path) -> None:
    """The compiled block keeps running Inductor's code while profiled (no recompile, no eager
    fallback), is one opaque timed node each way, and compiling works as before after the block."""
    from torch._dynamo.utils import counters
    from torch._inductor.compile_fx import compile_fx

    stats = {"compiles": 0, "calls": 0}

    def counting_inductor(gm: torch.fx.GraphModule, inputs: list) -> Callable:
        stats["compiles"] += 1
        compiled = compile_fx(gm, inputs)

        def run(*args: Any) -> Any:
            stats["calls"] += 1
            return compiled(*args)

        return run

    torch._dynamo.reset()
    model, x = seeded_net()
    model.block = torch.compile(model.block, backend=counting_inductor)

    def train_step() -> Any:
        model.zero_grad(set_to_none=True)
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss.detach(), grads(model)

    expected = train_step()  # compiles, outside the profile
    assert stats == {"compiles": 1, "calls": 1}
    frames = dict(counters["frames"])
    with gprof.profile(logdir=tmp_path, run="compiled") as prof:
        got = train_step()
    assert stats == {"compiles": 1, "calls": 2}, "under the profile the block must run its compiled code"
    assert dict(counters["frames"]) == frames, "profiling made Dynamo compile new frames"
    assert bitwise_equal(expected[0], got[0])
    for name, grad in expected[1].items():
        assert bitwise_equal(grad, got[1][name]), f"gradient of {name} differs"

    g = prof.graphs[0]
    regions = [n for n in g.nodes if n.op == "gprof.compiled_region"]
    assert [(n.phase, n.module) for n in regions] == [("forward", "block"), ("backward", "block")]
    assert all(n.dur_ns > 0 for n in regions)
    assert not any(n.op.startswith("aten.gelu") for n in g.nodes), "the block's GELU ran eagerly"
    # AccumulateGrad runs eagerly outside the compiled backward; anything else inside block is a leak
    leaked = [n.key for n in g.nodes if (n.module or "").startswith("block.") and n.param is None]
    assert not leaked, f"ops inside the compiled region recorded on their own: {leaked}"
    assert {"embed", "head"} <= {n.module for n in g.by_phase("forward")}

    train_step()  # after the block: same compiled code, no recompile
    assert stats == {"compiles": 1, "calls": 3}
    fresh = torch.compile(nn.Linear(8, 8), backend=counting_inductor)
    fresh(x)
    assert stats == {"compiles": 2, "calls": 4}, "compiling a new module after profiling must work as before"


def test_torch_func_transforms(tmp_path) -> None:
    """vmap, grad and jacrev (per-sample gradients, Jacobians) inside the profiled step
    (see /tmp/h6_findings.md F9)."""
    def run() -> Any:
        model, x = seeded_net()
        params = dict(model.named_parameters())

        def loss_of(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, p, (xi.unsqueeze(0),)).pow(2).sum()

        per_sample = torch.func.vmap(torch.func.grad(loss_of), in_dims=(None, 0))(params, x)
        jac = torch.func.jacrev(torch.sin)(x[0])
        return per_sample, jac

    g = check_same_and_record(run, tmp_path)
    assert {"embed", "block.fc1", "head"} <= {n.module for n in g.nodes}


def test_nested_tensors(tmp_path) -> None:
    """A nested (jagged) tensor has no single shape; recording must not crash (F10)."""
    def run() -> Any:
        torch.manual_seed(0)
        nt = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)])
        return list(nt.sin().unbind())

    g = check_same_and_record(run, tmp_path)
    assert any(n.op == "aten.sin.default" for n in g.nodes)


def test_closure_optimizer(tmp_path) -> None:
    """LBFGS (any ``opt.step(closure)``) runs forward and backward inside optimizer.step(); those are
    still forward/backward nodes of their modules (/tmp/h6_findings.md F12)."""
    def run() -> Any:
        model, x = seeded_net()
        opt = torch.optim.LBFGS(model.parameters(), max_iter=2)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            return loss

        return opt.step(closure), grads(model), [p.detach().clone() for p in model.parameters()]

    g = check_same_and_record(run, tmp_path)
    mm = [n for n in g.nodes if n.op == "aten.addmm.default" and n.module == "block.fc1"]
    assert len(mm) >= 2 and {n.phase for n in mm} == {"forward"}, [n.key for n in mm]
    assert g.by_phase("optimizer"), "LBFGS's own update ops should still be optimizer nodes"
    assert linked(g) >= 0.99
