"""Acceptance (issue 2, "Correct attribution"): on every example, nodes carry their module and their
forward partner, the step's FLOPs equal FlopCounterMode's, and peak memory matches MemTracker."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from conftest import EXAMPLE_NAMES, RECORDED_STEPS, load_example, seeded_net
from torch.distributed._tools.mem_tracker import MemTracker
from torch.utils.flop_counter import FlopCounterMode

import gprof
from gprof.report import run_report
from gprof.store import open_run


@pytest.fixture(scope="module")
def reports(recorded_examples) -> dict[str, dict[str, Any]]:
    return {name: run_report(open_run(rec.run_dir)) for name, rec in recorded_examples.items()}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_module_coverage_and_backward_links(name: str, reports) -> None:
    steps = reports[name]["steps"]
    assert len(steps) >= RECORDED_STEPS
    for s in steps[:RECORDED_STEPS]:
        assert s["phases"]["forward"] > 0 and s["phases"]["backward"] > 0, s["phases"]
        assert s["module_coverage"] >= 0.99, f"step {s['step']}: module_coverage {s['module_coverage']}"
        assert s["backward_linked"] >= 0.99, f"step {s['step']}: backward_linked {s['backward_linked']}"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_backward_nodes_inherit_their_forward_partner(name: str, recorded_examples) -> None:
    rec = recorded_examples[name]
    params = {n for n, _ in rec.trace.model.named_parameters()}
    g = rec.graphs[1]
    backward = g.by_phase("backward")
    for n in backward:
        if n.fwd is not None:
            partner = g.nodes[n.fwd]
            assert partner.phase == "forward" and partner.idx < n.idx, (n.key, partner.key)
            assert n.module == partner.module, (n.key, partner.key)
        if n.param is not None:
            assert n.param in params, f"{n.key}: AccumulateGrad names {n.param!r}, not a parameter"
            assert n.module == n.param.rpartition(".")[0]
    accumulated = {n.param for n in backward if n.param is not None}
    assert accumulated == {p for p, t in rec.trace.model.named_parameters() if t.requires_grad}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_forward_nodes_point_at_the_users_source_line(name: str, recorded_examples) -> None:
    g = recorded_examples[name].graphs[1]
    forward = g.by_phase("forward")
    assert forward
    for n in forward:
        assert n.source, f"{n.key} has no source line"
        assert "torch/" not in n.source and "gprof/" not in n.source, f"{n.key}: internal frame {n.source}"
    assert any(f"examples/{name}.py:" in n.source for n in forward)


def _flops_per_step(name: str) -> list[int]:
    ex = load_example(name)
    torch.manual_seed(0)
    model, opt, batches = ex.make(steps=RECORDED_STEPS)
    totals = []
    for batch in batches:
        with FlopCounterMode(display=False) as fc:
            ex.step(model, opt, batch)
        totals.append(fc.get_total_flops())
    return totals


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_flops_equal_flop_counter_mode(name: str, recorded_examples, reports) -> None:
    expected = _flops_per_step(name)
    graphs = recorded_examples[name].graphs[:RECORDED_STEPS]
    assert [sum(n.flops for n in g.nodes) for g in graphs] == expected
    assert [s["flops"] for s in reports[name]["steps"][:RECORDED_STEPS]] == expected
    if name != "dynamic":
        assert expected[0] > 0


def _second_step_peak_memtracker(name: str) -> tuple[int, dict[str, int]]:
    """MemTracker's peak over training step 1; each batch is dropped after its step, as a DataLoader does."""
    ex = load_example(name)
    torch.manual_seed(0)
    model, opt, batches = ex.make(steps=2)
    ex.step(model, opt, batches.pop(0))
    batch = batches.pop(0)
    mt = MemTracker()
    mt.track_external(model, opt, *batch)
    with mt:
        ex.step(model, opt, batch)
    (snap,) = mt.get_tracker_snapshot("peak").values()
    return snap["Total"], {str(getattr(k, "value", k)): v for k, v in snap.items()}


def _second_step_graph(name: str, tmp_path, profile_first_step: bool) -> Any:
    ex = load_example(name)
    torch.manual_seed(0)
    model, opt, batches = ex.make(steps=2)
    if not profile_first_step:
        ex.step(model, opt, batches.pop(0))
    with gprof.profile(logdir=tmp_path, run=name) as prof:
        if profile_first_step:
            ex.step(model, opt, batches.pop(0))
            prof.step()
        ex.step(model, opt, batches.pop(0))
    return prof.graphs[-1]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_peak_memory_matches_memtracker(name: str, tmp_path) -> None:
    expected, split = _second_step_peak_memtracker(name)
    g = _second_step_graph(name, tmp_path, profile_first_step=True)
    assert g.memory.peak_bytes == pytest.approx(expected, rel=0.01), f"MemTracker's split: {split}"
    assert g.memory.peak_node is not None and g.nodes[g.memory.peak_node].live_bytes == g.memory.peak_bytes


@pytest.mark.parametrize("name", ["transformer", "mlp"])
def test_peak_memory_matches_memtracker_when_profiling_a_warm_model(name: str, tmp_path) -> None:
    """The profile is entered after a training step ran without it, so parameters and optimizer state
    exist before the session ever saw the model (see /tmp/h6_findings.md F1)."""
    expected, split = _second_step_peak_memtracker(name)
    g = _second_step_graph(name, tmp_path, profile_first_step=False)
    assert g.memory.peak_bytes == pytest.approx(expected, rel=0.01), f"MemTracker's split: {split}"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_memory_categories_add_up_to_the_peak(name: str, tmp_path) -> None:
    g = _second_step_graph(name, tmp_path, profile_first_step=True)
    cats = g.memory.by_category
    assert cats.get("parameter", 0) == sum(p.nbytes for p in load_example(name).make(steps=1)[0].parameters())
    assert sum(cats.values()) == g.memory.peak_bytes, f"categories {cats} vs peak {g.memory.peak_bytes}"


def test_saved_activations_per_module(recorded_examples) -> None:
    g = recorded_examples["mlp"].graphs[1]
    saved = g.memory.saved_activations
    # every Linear saves its input for the weight gradient: 64 rows x in_features float32
    assert saved.get("net.0", 0) >= 64 * 256 * 4
    assert saved.get("net.2", 0) >= 64 * 512 * 4
    assert set(saved) <= set(g.modules), f"saved under unknown modules: {set(saved) - set(g.modules)}"


def test_submodules_called_directly_keep_their_names(tmp_path) -> None:
    """Training loops often call submodules themselves (``model.encoder(x)``); the nodes must still
    carry the state_dict names."""
    model, x = seeded_net()
    g = _record_direct_calls(tmp_path, "direct", model, x)
    fwd_modules = {n.module for n in g.by_phase("forward")} - {None}
    assert {"embed", "block", "block.fc1", "block.act", "block.fc2", "head"} <= fwd_modules, fwd_modules
    params = {n.param for n in g.by_phase("backward") if n.param is not None}
    assert params == {name for name, _ in model.named_parameters()}


def _record_direct_calls(tmp_path, run: str, model: torch.nn.Module, x: torch.Tensor):
    with gprof.profile(logdir=tmp_path, run=run) as prof:
        h = torch.relu(model.embed(x))
        loss = model.head(model.block(h)).pow(2).mean()
        loss.backward()
    return prof.graphs[0]


def test_ownership_stays_right_across_sessions_copies_and_replaced_submodules(tmp_path) -> None:
    """Ownership is indexed once per process and kept current by a registration hook: a deepcopy
    (which registers nothing), a replaced submodule and a deleted one must still be named right."""
    model, x = seeded_net()
    _record_direct_calls(tmp_path, "first", model, x)
    twin = copy.deepcopy(model)
    g = _record_direct_calls(tmp_path, "copy", twin, x)
    assert {"embed", "block.fc1", "head"} <= {n.module for n in g.by_phase("forward")}
    model.head = torch.nn.Linear(model.head.in_features, model.head.out_features)
    g = _record_direct_calls(tmp_path, "replaced", model, x)
    assert {"embed", "block.fc1", "head"} <= {n.module for n in g.by_phase("forward")}
    block = model.block
    del model.block
    with gprof.profile(logdir=tmp_path, run="orphan") as prof:
        block(torch.randn(4, block.fc1.in_features)).sum().backward()
    orphan_modules = {n.module for n in prof.graphs[0].by_phase("forward")} - {None}
    assert orphan_modules and not any(m.startswith("block") for m in orphan_modules), orphan_modules


def test_node_metadata_and_saved_tensor_dataflow(recorded_examples) -> None:
    """Tensor metadata, bytes, thread/rank, and producer->consumer edges that survive saved tensors."""
    g = recorded_examples["mlp"].graphs[1]
    fc0 = g.node_by_key("net.0:forward:aten.addmm.default#0")
    assert fc0 is not None
    bias, x, w_t = fc0.inputs
    assert (bias.shape, x.shape, w_t.shape) == ((512,), (64, 256), (256, 512))
    assert {m.dtype for m in fc0.inputs} == {"float32"} and {m.device for m in fc0.inputs} == {"cpu"}
    (out,) = fc0.outputs
    assert out.shape == (64, 512) and out.nbytes == 64 * 512 * 4
    assert fc0.alloc_bytes == out.nbytes and fc0.flops == 2 * 64 * 256 * 512
    assert fc0.thread == 0 and fc0.rank == 0 and fc0.dur_ns > 0
    assert fc0.source and "examples/mlp.py:" in fc0.source
    # live bytes rise by what each op allocates and fall by what it frees
    for prev, n in zip(g.nodes, g.nodes[1:]):
        assert n.live_bytes == prev.live_bytes + n.alloc_bytes - n.freed_bytes, n.key
    # relu's output is saved for backward; the backward op reads it back through a new tensor object
    relu = g.node_by_key("net.1:forward:aten.relu.default#0")
    readers = [g.nodes[e.dst] for e in g.edges if e.src == relu.idx]
    assert any(r.phase == "backward" and r.module in ("net.1", "net.2") for r in readers), \
        [r.key for r in readers]
    bw_mm = [n for n in g.by_phase("backward") if n.module == "net.2" and n.op == "aten.mm.default"]
    assert any(relu.idx in g.producers().get(n.idx, []) for n in bw_mm), "net.2's weight grad does not read relu"


def test_memory_curve_by_category_sums_to_live_bytes(recorded_examples) -> None:
    """The stacked category curve is the same accounting as each node's live bytes, and its value at
    the peak node is the peak's category split."""
    for name, rec in recorded_examples.items():
        for g in rec.graphs:
            curve = g.memory.curve
            assert curve["nodes"] and g.memory.peak_node in curve["nodes"], name
            for k, idx in enumerate(curve["nodes"]):
                total = sum(values[k] for values in curve["categories"].values())
                assert total == g.nodes[idx].live_bytes, (name, idx)
            at_peak = curve["nodes"].index(g.memory.peak_node)
            split = {c: v[at_peak] for c, v in curve["categories"].items() if v[at_peak]}
            assert split == g.memory.by_category, name
