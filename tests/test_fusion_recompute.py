"""Checkpointed forwards re-run in backward (phase ``recompute``) are predicted inside the backward's kernels.

Compiled, AOTAutograd puts a checkpointed region's recomputation in the backward graph, where Inductor fuses
it with the backward ops that read it: on this two-block model (CPU, torch 2.13) the backward output code
launches ``cpp_fused_add_gelu_gelu_backward_mul_native_layer_norm_native_layer_norm_backward`` once per block.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import gprof
from gprof.analyses import fusion
from gprof.analyses.fusion_rules import FREE, role


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(32, 32)
        self.norm = torch.nn.LayerNorm(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.nn.functional.gelu(self.lin(x)) * 2 + x)


class _Model(torch.nn.Module):
    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(_Block() for _ in range(2))
        self.reentrant = reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = checkpoint(b, x, use_reentrant=self.reentrant)
        return x


@pytest.mark.parametrize("reentrant", [False, True])
def test_recomputed_ops_fuse_with_the_backward(tmp_path: object, reentrant: bool) -> None:
    torch.manual_seed(0)
    model = _Model(reentrant)
    with gprof.profile(logdir=str(tmp_path), run="ck", worker=False) as prof:
        model(torch.randn(8, 32, requires_grad=reentrant)).sum().backward()
        prof.step()
    graph = prof.graphs[-1]
    recompute = {n.idx for n in graph.nodes if n.phase == "recompute" and role(n) != FREE}  # views launch nothing
    backward = {n.idx for n in graph.nodes if n.phase == "backward"}
    assert recompute and backward
    kernels = fusion.predict(graph, "cpu")
    predicted = {i for k in kernels["backward"] for i in k.nodes}
    assert recompute <= predicted  # not left out of the prediction
    by_idx = {n.idx: n for n in graph.nodes}
    for k in kernels["backward"]:
        gelus = [i for i in k.nodes if i in recompute and by_idx[i].op_short == "gelu"]
        if gelus:  # each recomputed gelu shares a generated kernel with backward work
            assert k.generated and any(i in backward for i in k.nodes), [by_idx[i].op_short for i in k.nodes]
    analysed = fusion.analyse(graph, "cpu")
    assert "recompute" not in analysed["predicted_kernels"]
    assert analysed["eager_kernels"]["backward"] == sum(len(k.nodes) for k in kernels["backward"])
