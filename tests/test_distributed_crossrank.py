"""Cross-rank analysis on step files written through the store: mismatch classification, wait
accounting and the straggler, on hand-made graphs whose answer is known exactly."""
from __future__ import annotations

from pathlib import Path

import pytest

from gprof.distributed import cross_rank_report, format_cross_rank
from gprof.distributed.timeline import merge, subtract
from gprof.graph.keys import KeyCounter
from gprof.graph.model import Node, StepGraph, StepMeta, TensorMeta
from gprof.store import StoreError, open_run, plugin_dir, step_filename, write_step

MS = 1_000_000


def _t(shape: tuple[int, ...], dtype: str = "float32", storage: int = 1) -> TensorMeta:
    return TensorMeta(shape, dtype, "cpu", 4 * max(1, len(shape)), storage)


class _Builder:
    """Nodes of one rank's step in order, each starting where the previous ended plus a gap."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.clock = 0
        self.keys = KeyCounter()

    def op(self, op: str, dur: int = MS, gap: int = 0, source: str | None = None, attrs: dict | None = None,
           storage: int = 1) -> None:
        self.clock += gap
        module = "model"
        self.nodes.append(Node(
            idx=len(self.nodes), key=self.keys.next(module, "forward", op), op=op, phase="forward", module=module,
            inputs=(_t((4,), storage=storage),), outputs=(_t((4,), storage=storage),), start_ns=self.clock,
            dur_ns=dur, source=source, attrs=attrs or {}))
        self.clock += dur

    def coll(self, kind: str, shape: tuple[int, ...] = (4,), dtype: str = "float32", source: str | None = None,
             group: str = "0", group_size: int = 2, storage: int = 1, **kw: object) -> None:
        attrs = {"kind": kind, "collective": kind + "_", "bytes": 16, "shapes": [list(shape)], "dtypes": [dtype],
                 "group": group, "group_size": group_size, **kw}
        self.op(f"c10d.{kind}_.default", dur=10_000, source=source, attrs=attrs, storage=storage)


def _write(root: Path, ranks: dict[int, _Builder], step: int = 0, world: int = 2) -> Path:
    for rank, b in ranks.items():
        meta = StepMeta(run="r", step=step, rank=rank, world_size=world, wall_ns=b.clock,
                        extra={"start_ns": 0})
        write_step(StepGraph(meta=meta, nodes=b.nodes), plugin_dir(root, "r") / step_filename(step, rank, world))
    return root / "r"


def _mismatches(root: Path, r0: _Builder, r1: _Builder) -> list[dict]:
    return cross_rank_report(open_run(_write(root, {0: r0, 1: r1})))["steps"][0]["mismatches"]


def test_matching_sequences_and_same_call_from_rank_specific_lines_are_fine(tmp_path: Path) -> None:
    r0, r1 = _Builder(), _Builder()
    r0.coll("broadcast", source="train.py:10 in main")  # if rank == 0: broadcast(x, 0)
    r1.coll("broadcast", source="train.py:12 in main")  # else: broadcast(y, 0)
    for b in (r0, r1):
        b.coll("allreduce", source="train.py:20 in main")
    assert _mismatches(tmp_path, r0, r1) == []


def test_dtype_mismatch_names_both_source_lines(tmp_path: Path) -> None:
    r0, r1 = _Builder(), _Builder()
    r0.coll("allreduce", dtype="float32", source="a.py:3 in f")
    r1.coll("allreduce", dtype="int32", source="a.py:5 in f")
    (m,) = _mismatches(tmp_path, r0, r1)
    assert (m["type"], m["index"], m["group"]) == ("dtype", 0, "0")
    assert [s["source"] for s in m["ranks"]] == ["a.py:3 in f", "a.py:5 in f"]
    assert "f32[4]" in m["message"] and "i32[4]" in m["message"]


def test_order_mismatch(tmp_path: Path) -> None:
    r0, r1 = _Builder(), _Builder()
    r0.coll("allreduce", source="a.py:1 in f")
    r0.coll("broadcast", source="a.py:2 in f")
    r1.coll("broadcast", source="a.py:2 in f")
    r1.coll("allreduce", source="a.py:1 in f")
    (m,) = _mismatches(tmp_path, r0, r1)
    assert m["type"] == "order" and m["index"] == 0


def test_count_mismatch_points_at_the_unpartnered_call(tmp_path: Path) -> None:
    r0, r1 = _Builder(), _Builder()
    for b in (r0, r1):
        b.coll("allreduce", source="a.py:1 in f")
    r0.coll("allreduce", shape=(8,), source="a.py:9 in f")
    (m,) = _mismatches(tmp_path, r0, r1)
    assert (m["type"], m["index"]) == ("count", 1)
    side0, side1 = m["ranks"]
    assert side0["source"] == "a.py:9 in f"
    assert side1["missing"] and side1["issued"] == 1 and side1["last"]["source"] == "a.py:1 in f"
    text = "\n".join(format_cross_rank(cross_rank_report(open_run(tmp_path / "r"))))
    assert "a.py:9 in f" in text and "a.py:1 in f" in text and "rank 0 issued 2 collectives and rank 1 1" in text


def test_subgroup_on_one_rank_is_not_a_mismatch_but_a_missing_world_collective_is(tmp_path: Path) -> None:
    r0, r1 = _Builder(), _Builder()
    r0.coll("allreduce", group="sub", group_size=1, source="a.py:4 in f")
    r0.coll("barrier", shape=(1,), group="0", source="a.py:5 in f")
    r1.op("aten.add.Tensor")
    (m,) = _mismatches(tmp_path, r0, r1)
    assert (m["group"], m["type"]) == ("0", "count")


def test_straggler_and_divergence_node_from_busy_time_not_waiting(tmp_path: Path) -> None:
    # rank 1 spends 50 ms of host time before its 'slow' op; rank 0 reaches the allreduce early and
    # waits 50 ms before the op that reads the reduced tensor (storage 7).
    r0, r1 = _Builder(), _Builder()
    for b, gap in ((r0, 0), (r1, 50 * MS)):
        b.op("aten.mm.default", source="m.py:1 in f")
        b.op("aten.relu.default", gap=gap, source="m.py:2 in slow")
        b.coll("allreduce", storage=7, source="m.py:3 in f")
        b.op("aten.add.Tensor", storage=3)  # does not touch the reduced tensor
        b.op("aten.div.Tensor", gap=50 * MS - gap, storage=7, source="m.py:5 in f")
    d = cross_rank_report(open_run(_write(tmp_path, {0: r0, 1: r1})))
    (s,) = d["steps"]
    e0, e1 = s["ranks"]
    assert e0["comm_wait_ns"] == 50 * MS and e1["comm_wait_ns"] == 0
    assert e0["wall_ns"] == e1["wall_ns"] and e0["compute_ns"] == e1["compute_ns"] == 4 * MS
    sk = s["skew"]
    assert (sk["straggler_rank"], sk["fastest_rank"], sk["lag_ns"]) == (1, 0, 50 * MS)
    node = sk["node"]
    assert node["key"] == "model:forward:aten.relu.default#0" and node["slow_rank"] == 1
    assert node["spread_ns"] == 50 * MS and node["source"] == "m.py:2 in slow"
    assert d["straggler"] == {"rank": 1, "slowest_in_steps": 1, "steps": 1, "total_lag_ns": 50 * MS}


def test_blocking_call_waits_until_the_next_op(tmp_path: Path) -> None:
    r0, r1 = _Builder(), _Builder()
    for b, gap in ((r0, 20 * MS), (r1, 0)):
        b.coll("allreduce", async_op=False)
        b.op("aten.add.Tensor", gap=gap, storage=5)
    (s,) = cross_rank_report(open_run(_write(tmp_path, {0: r0, 1: r1})))["steps"]
    assert [e["comm_wait_ns"] for e in s["ranks"]] == [20 * MS, 0]


def test_missing_rank_file_and_unknown_step(tmp_path: Path) -> None:
    r0, r1 = _Builder(), _Builder()
    for b in (r0, r1):
        b.coll("allreduce")
    _write(tmp_path, {0: r0, 1: r1}, step=0)
    _write(tmp_path, {0: r0}, step=1)
    run = open_run(tmp_path / "r")
    d = cross_rank_report(run)
    assert [s["missing_ranks"] for s in d["steps"]] == [[], [1]]
    assert d["steps"][1]["skew"] is None
    assert any("no file for rank(s) 1" in line for line in format_cross_rank(d))
    with pytest.raises(StoreError, match="no step 7 on any rank; steps: \\[0, 1\\]"):
        cross_rank_report(run, step=7)


def test_interval_arithmetic() -> None:
    assert merge([(5, 7), (0, 2), (1, 3), (9, 9)]) == [(0, 3), (5, 7)]
    assert subtract([(0, 10), (20, 30)], [(2, 4), (8, 22), (25, 26)]) == [(0, 2), (4, 8), (22, 25), (26, 30)]
