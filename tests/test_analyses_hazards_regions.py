"""Graph-break hazards and compile-region suggestions on small graphs built by hand."""
from __future__ import annotations

import pytest
from graphbuild import G

from gprof.analyses import hazards, regions, run_all


# ----------------------------------------------------------------------------------- hazards
@pytest.mark.parametrize("op, inputs, kind", [
    ("aten._local_scalar_dense.default", [("float32", "cpu")], hazards.DATA_DEPENDENT),
    ("aten.nonzero.default", [("float32", "cpu")], hazards.DYNAMIC_SHAPE),
    ("aten.masked_select.default", [("float32", "cpu"), ("bool", "cpu")], hazards.DYNAMIC_SHAPE),
    ("aten.index.Tensor", [("float32", "cpu"), ("bool", "cpu")], hazards.DYNAMIC_SHAPE),
    ("aten._local_scalar_dense.default", [("float32", "cuda:0")], hazards.SYNC),
])
def test_hazard_kinds(op, inputs, kind):
    g = G()
    ins = [g.input((8,), dtype, device) for dtype, device in inputs]
    g.op(op, ins, (8,), source="train.py:12 in forward", module="enc")
    (h,) = hazards.find(g.graph)
    assert (h["kind"], h["source"], h["module"], h["op"]) == (kind, "train.py:12 in forward", "enc", op)


def test_cross_device_copy_is_a_sync():
    g = G()
    x = g.input((8,), device="cuda:0")
    g.op("aten._to_copy.default", [x], (8,), device="cpu")
    assert [h["kind"] for h in hazards.find(g.graph)] == [hazards.SYNC]


def test_integer_indexing_is_not_a_hazard():
    g = G()
    g.op("aten.index.Tensor", [g.input((8,)), g.input((4,), "int64")], (4,))
    assert hazards.find(g.graph) == []


def test_random_value_read_into_python_is_python_randomness():
    g = G()
    x = g.input((1,))
    r = g.op("aten.bernoulli.default", [x])
    g.op("aten._local_scalar_dense.default", [r], ())
    assert [h["kind"] for h in hazards.find(g.graph)] == [hazards.PYTHON_RANDOM]


def test_hazards_ranked_by_fusible_work_split():
    g = G()
    t = g.input((16,))
    t = g.op("aten.sin.default", [t], dur_ns=10)
    g.op("aten._local_scalar_dense.default", [t], (), source="a.py:1")  # near the start: splits little
    for _ in range(4):
        t = g.op("aten.sin.default", [t], dur_ns=100)
    g.op("aten._local_scalar_dense.default", [t], (), source="a.py:2")  # in the middle
    for _ in range(4):
        t = g.op("aten.sin.default", [t], dur_ns=100)
    hs = hazards.find(g.graph)
    assert [(h["rank"], h["source"]) for h in hs] == [(1, "a.py:2"), (2, "a.py:1")]
    assert hs[0]["split_ns"] == 400 and hs[1]["split_ns"] == 10


# ----------------------------------------------------------------------------------- regions
def _chain(i: int, modules: list[str], saved: int, phase: str = "forward") -> dict:
    return {"id": i, "phase": phase, "modules": modules, "est_time_saved_ns": saved}


def _hazard(module: str | None) -> dict:
    return {"kind": "data_dependent", "op": "aten._local_scalar_dense.default", "module": module, "source": "x.py:1"}


def test_suggests_maximal_hazard_free_subtree():
    chains = [_chain(0, ["enc.block.norm"], 500), _chain(1, ["enc.block.ff"], 400), _chain(2, ["head"], 10)]
    (s, *rest) = regions.suggest(chains, [_hazard("")])
    assert s["module"] == "enc" and s["snippet"] == "model.enc.compile()" and s["chains"] == [0, 1]
    assert s["est_time_saved_ns"] == 900 and s["hazards_avoided"][0]["module"] == ""
    assert rest == []  # enc alone covers over 90% of the saving


def test_region_never_contains_a_hazard():
    chains = [_chain(0, ["enc.a"], 500), _chain(1, ["enc.b"], 400)]
    out = regions.suggest(chains, [_hazard("enc.b")])
    assert [s["module"] for s in out] == ["enc.a"]  # enc.b holds the hazard, so does enc


def test_root_is_suggested_when_nothing_breaks():
    (s,) = regions.suggest([_chain(0, ["a"], 5), _chain(1, ["b"], 5)], [])
    assert s["module"] == "" and s["snippet"] == "model.compile()"


def test_repeated_blocks_become_one_suggestion():
    chains = [_chain(i, [f"encoder.layers.{i}.ff"], 100) for i in range(3)] + [_chain(3, [""], 1)]
    types = {"encoder.layers": "ModuleList", **{f"encoder.layers.{i}": "EncoderLayer" for i in range(3)}}
    out = regions.suggest(chains, [_hazard(""), _hazard("encoder")], types)
    assert len(out) == 1
    s = out[0]
    assert s["modules"] == ["encoder.layers.0", "encoder.layers.1", "encoder.layers.2"]
    assert s["snippet"] == "for block in model.encoder.layers:\n    block.compile()"
    assert s["est_time_saved_ns"] == 300 and s["rank"] == 1


def test_suggestions_ranked_and_optimizer_chains_ignored():
    chains = [_chain(0, ["a"], 10), _chain(1, ["b"], 30), _chain(2, ["c"], 1000, phase="optimizer")]
    out = regions.suggest(chains, [_hazard("")])
    assert [s["module"] for s in out] == ["b", "a"] and [s["rank"] for s in out] == [1, 2]


def test_accessor_snippets():
    assert regions.accessor("encoder.layers.0.self_attn") == "model.encoder.layers[0].self_attn"
    assert regions.accessor("") == "model"


def test_run_all_on_a_built_graph_fills_every_key():
    g = G()
    x = g.input((64, 32))
    a = g.op("aten.mul.Tensor", [x, x], module="enc")
    g.op("aten.relu.default", [a], module="enc")
    g.op("aten._local_scalar_dense.default", [a], (), module=None, source="t.py:3")
    out = run_all(g.graph)
    assert set(out) == {"op_classes", "fusion", "hazards", "compile_suggestions", "optimizer_advice"}
    assert out["compile_suggestions"][0]["module"] == "enc"
    assert out["hazards"][0]["source"] == "t.py:3"
