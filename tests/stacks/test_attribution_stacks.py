"""Issue 13 points 2-4 on a real transformers 5 Llama (tiny config built here) and LBFGS.

- attribution follows the call: the rotary function module every attention layer shares is filed
  under each layer, so identical layers get identical node counts, forward and backward;
- activation checkpointing (both torch.utils.checkpoint modes): recomputed ops are phase
  ``recompute``, linked to the forward node they repeat, with source lines, and the report shows
  per layer the recompute time and the activation bytes checkpointing saves;
- ``optimizer.step(closure)``: the closure's ops are forward/backward, with their own lines;
- every profiled run bit-identical to the unprofiled one.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from stackutil import assert_bit_identical, phases, train

import gprof
from gprof.graph.model import StepGraph
from gprof.store import open_run
from gprof.store.queries.summary import step_summary

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[stacks]')")

LAYERS = 3
STEPS = 2


def _llama(attn: str, checkpoint: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                   attn_implementation=attn, use_cache=False)
    model = transformers.LlamaForCausalLM(cfg)
    if checkpoint is not None:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": checkpoint == "reentrant"})
    return model.train()


def _train(attn: str, checkpoint: str | None, prof: gprof.profile | None) -> list[torch.Tensor]:
    """STEPS AdamW steps; returns the losses and the final parameters."""
    model = _llama(attn, checkpoint)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    losses = train(lambda: model(input_ids=ids, labels=ids).loss, opt, STEPS, prof)
    return losses + [p.detach().clone() for p in model.parameters()]


def _profiled(tmp_path: Path, attn: str, checkpoint: str | None) -> tuple[list[StepGraph], Path]:
    with gprof.profile(logdir=tmp_path, run=f"{attn}-{checkpoint}") as prof:
        profiled = _train(attn, checkpoint, prof)
    assert_bit_identical(profiled, _train(attn, checkpoint, None))
    return [gprof.load(prof.run_dir, step=s) for s in range(STEPS)], prof.run_dir


def _per_layer(graph: StepGraph, phase: str) -> list[int]:
    counts = Counter(n.module.split(".")[2] for n in graph.nodes
                     if n.phase == phase and n.module and n.module.startswith("model.layers."))
    return [counts[str(i)] for i in range(LAYERS)]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_identical_layers_get_identical_nodes_and_stable_keys(tmp_path: Path, attn: str) -> None:
    graphs, run_dir = _profiled(tmp_path, attn, None)
    last = graphs[-1]
    fwd, bwd = _per_layer(last, "forward"), _per_layer(last, "backward")
    # measured: eager 101/165 and sdpa 70/135 nodes per layer (layer 0 had 133/201 and 102/171
    # when the shared rotary function was filed under its first caller)
    assert fwd == [fwd[0]] * LAYERS and fwd[0] > 50, fwd
    assert bwd == [bwd[0]] * LAYERS and bwd[0] > 100, bwd
    shared = {n.module for n in last.nodes if n.module and n.module.endswith(".Func")}
    assert {m.split(".")[2] for m in shared} == {str(i) for i in range(LAYERS)}, shared
    assert step_summary(open_run(run_dir).open(STEPS - 1))["module_coverage"] == 1.0
    # keys name the same node in every step (the first step also creates the optimizer state)
    fb = [{n.key for n in g.nodes if n.phase in ("forward", "backward")} for g in graphs]
    assert fb[0] == fb[1]


@pytest.mark.parametrize("mode", ["non-reentrant", "reentrant"])
def test_checkpointed_forward_is_recompute_linked_with_lines(tmp_path: Path, mode: str) -> None:
    graphs, run_dir = _profiled(tmp_path, "sdpa", mode)
    g = graphs[-1]
    by = {n.idx: n for n in g.nodes}
    rc = [n for n in g.nodes if n.phase == "recompute"]
    counts = _per_layer(g, "recompute")
    assert counts == [counts[0]] * LAYERS and counts[0] > 50, counts  # measured: 67 / 73 per layer
    linked = [n for n in rc if n.fwd is not None]
    # measured: non-reentrant 201/201; reentrant 210/219 (its recomputation, unlike its no-grad
    # forward, saves outputs for backward: one unpartnered detach per such op)
    assert len(linked) / len(rc) >= (1.0 if mode == "non-reentrant" else 0.95), (len(linked), len(rc))
    assert all(by[n.fwd].phase == "forward" and by[n.fwd].op == n.op and by[n.fwd].module == n.module
               for n in linked)
    files = ("modeling_llama.py", "sdpa_attention.py", "activations.py")  # the user's (transformers') lines
    assert all(any(f in (n.source or "") for f in files) for n in rc)
    assert len({n.source for n in rc}) > 10  # per-op lines, not one line for all
    bw = [n for n in g.nodes if n.phase == "backward"]
    assert all(n.fwd is None or by[n.fwd].phase == "forward" for n in bw)  # partners are forward nodes
    s = step_summary(open_run(run_dir).open(STEPS - 1))
    assert s["backward_linked"] == 1.0 and s["phases"]["recompute"] == len(rc)
    assert s["recompute_linked"] == round(len(linked) / len(rc), 6)
    layers = {e["module"]: e for e in s["modules"] if e["module"].count(".") == 2
              and e["module"].startswith("model.layers.")}
    assert len(layers) == LAYERS
    for e in layers.values():
        assert e["recompute_ns"] > 0 and e["recomputed_activation_bytes"] > 0, e
    saved = {e["recomputed_activation_bytes"] for e in layers.values()}
    assert len(saved) == 1, saved  # identical layers save identical bytes


def _lbfgs(prof: gprof.profile | None) -> tuple[list[torch.Tensor], int]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.LBFGS(net.parameters(), max_iter=3)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    calls = 0

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        opt.zero_grad()
        out = net(x)
        loss = torch.nn.functional.mse_loss(out, y)
        loss.backward()
        return loss

    out = []
    for _ in range(STEPS):
        out.append(opt.step(closure).detach().clone())
        if prof is not None:
            prof.step()
    return out + [p.detach().clone() for p in net.parameters()], calls


def test_lbfgs_closure_is_forward_and_backward(tmp_path: Path) -> None:
    with gprof.profile(logdir=tmp_path, run="lbfgs") as prof:
        profiled, calls = _lbfgs(prof)
    plain, plain_calls = _lbfgs(None)
    assert_bit_identical(profiled, plain) and calls == plain_calls
    g = gprof.load(prof.run_dir, step=STEPS - 1)
    counts = phases(g)
    per_call = calls // STEPS
    loss_ops = [n for n in g.nodes if n.op == "aten.mse_loss.default"]
    assert len(loss_ops) == per_call and all(n.phase == "forward" for n in loss_ops)
    assert counts["forward"] > 0 and counts["backward"] > 0 and counts["optimizer"] > 0, counts
    assert not any(n.phase == "optimizer" and n.op in ("aten.addmm.default", "aten.tanh.default", "aten.mse_loss.default")
                   for n in g.nodes)
    # each op its own line (they all had the first op's line): the model call and the loss call
    fwd_lines = {n.source.rsplit(" in ", 1)[0].rsplit(":", 1)[1] for n in g.nodes if n.phase == "forward"}
    src = Path(__file__).read_text().splitlines()
    assert {src[int(i) - 1].strip() for i in fwd_lines} == {
        "out = net(x)", "loss = torch.nn.functional.mse_loss(out, y)"}, fwd_lines
