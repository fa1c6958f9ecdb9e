"""Real 2-process gloo jobs, profiled on every rank: DDP files, allreduce nodes and bit-identical
results, a sleeping rank named as the straggler, and mismatched collectives (a shape mismatch, and
one hidden behind a data-dependent branch that really hangs until gloo's timeout).

One spawned job runs every scenario (start-up dominates: ~4 s of the ~6 s), each into its own run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import gprof
from examples import ddp_train
from gprof.cli import main as cli_main
from gprof.distributed import cross_rank_report
from gprof.store import open_run, step_filename

STEPS = 3
STRAGGLE_S = 0.25
GLOO_TIMEOUT_S = 5.0
THIS_FILE = Path(__file__)


def _line(marker: str) -> int:
    """Line number of the line in this file that ends with ``# <marker>``."""
    for i, text in enumerate(THIS_FILE.read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return i
    raise AssertionError(f"marker {marker} not found")


def _shape_mismatch(rank: int) -> None:
    if rank == 0:
        dist.all_reduce(torch.ones(2, 4))  # SHAPE-RANK0
    else:
        dist.all_reduce(torch.ones(8))  # SHAPE-RANK1


def _branchy(rank: int) -> None:
    x = torch.full((4,), float(rank))
    if x.sum() > 0:  # data-dependent: true on rank 1 only
        dist.all_reduce(x)  # BRANCH-EXTRA
    dist.all_reduce(torch.ones(4))  # BRANCH-COMMON


def _job(logdir: str, outdir: str) -> None:
    rank, _ = ddp_train.init_gloo(timeout_s=GLOO_TIMEOUT_S)
    reference = ddp_train.train(rank, STEPS)
    with gprof.profile(logdir=logdir, run="ddp") as prof:
        profiled = ddp_train.train(rank, STEPS, prof)
    torch.save({"reference": [p.detach() for p in reference.parameters()],
                "profiled": [p.detach() for p in profiled.parameters()]}, f"{outdir}/rank{rank}.pt")
    with gprof.profile(logdir=logdir, run="straggler") as prof:
        ddp_train.train(rank, 2, prof, straggle=STRAGGLE_S if rank == 1 else 0.0)
    with gprof.profile(logdir=logdir, run="shape"):
        _shape_mismatch(rank)
    dist.barrier()
    try:
        with gprof.profile(logdir=logdir, run="branch"):
            _branchy(rank)
    except RuntimeError as e:  # rank 1 waits for a partner that never comes: gloo's timeout ends it
        Path(outdir, f"rank{rank}.error").write_text(str(e))
        return
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logdir the job wrote; each rank's parameters are in ``<logdir>/out``."""
    logdir = tmp_path_factory.mktemp("dist")
    (logdir / "out").mkdir()
    ddp_train.spawn_local(_job, 2, (str(logdir), str(logdir / "out")), timeout_s=120)
    return logdir


def _report(run_dir: Path) -> dict:
    return cross_rank_report(open_run(run_dir))


@pytest.mark.slow
def test_one_file_per_rank_per_step(job: Path) -> None:
    run = open_run(job / "ddp")
    names = sorted(f.path.name for f in run.files())
    assert names == sorted(step_filename(s, r, 2) for s in range(STEPS) for r in range(2))
    for f in run.files():
        g = gprof.load(f.path)
        assert (g.meta.rank, g.meta.world_size, g.meta.step) == (f.rank, 2, f.step)


@pytest.mark.slow
def test_allreduce_nodes_carry_bytes_group_and_bucket(job: Path) -> None:
    params = {"module.0.weight": 64 * 32, "module.0.bias": 64, "module.2.weight": 64 * 64, "module.2.bias": 64,
              "module.4.weight": 4 * 64, "module.4.bias": 4}
    run = open_run(job / "ddp")
    buckets = {(s["step"], e["rank"]): e["buckets"] for s in cross_rank_report(run)["steps"] for e in s["ranks"]}
    for f in run.files():
        g = gprof.load(f.path)
        allreduces = [n for n in g.nodes if n.op == "c10d.allreduce_.default"]
        # DDP's first iteration uses one big first bucket; it rebuilds small ones after it
        assert len(allreduces) >= (2 if f.step > 0 else 1), "small buckets give several gradient allreduces"
        for n in allreduces:
            a = n.attrs
            assert n.phase == "backward" and n.param in params
            assert a["kind"] == "allreduce" and a["group_size"] == 2 and a["dtypes"] == ["float32"]
            assert a["bytes"] == 4 * a["shapes"][0][0] > 0
            assert a["async_op"] is True and a.get("end_ns", n.start_ns) >= n.start_ns
        by_key = {b["key"]: b for b in buckets[(f.step, f.rank)]}
        assert sorted(by_key) == sorted(n.key for n in allreduces)
        assert [by_key[n.key]["bucket"] for n in allreduces] == list(range(len(allreduces)))
        for n in allreduces:
            b = by_key[n.key]
            assert b["bytes"] == n.attrs["bytes"] == 4 * sum(params[p] for p in b["params"])
            assert n.param in b["params"], "the parameter whose gradient made the bucket ready"
        assert sorted(p for b in by_key.values() for p in b["params"]) == sorted(params), \
            "every parameter's gradient is in exactly one bucket"


@pytest.mark.slow
def test_profiled_ddp_is_bit_identical_to_unprofiled(job: Path) -> None:
    out = job / "out"
    for rank in range(2):
        d = torch.load(out / f"rank{rank}.pt")
        assert len(d["profiled"]) == 6
        for ref, got in zip(d["reference"], d["profiled"]):
            assert torch.equal(ref, got)
    r0, r1 = (torch.load(out / f"rank{r}.pt")["profiled"] for r in range(2))
    assert all(torch.equal(a, b) for a, b in zip(r0, r1)), "DDP keeps the replicas equal"


@pytest.mark.slow
def test_sleeping_rank_is_named_straggler(job: Path) -> None:
    d = _report(job / "straggler")
    assert d["straggler"]["rank"] == 1 and d["straggler"]["slowest_in_steps"] == 2
    for s in d["steps"]:
        sk = s["skew"]
        assert sk["straggler_rank"] == 1
        # the sleep is 250 ms; on a loaded 2-core machine the other rank's own stalls eat into the
        # measured lag, so only a clear share of it is required (the straggler's identity is the point)
        assert sk["lag_ns"] > 0.25 * STRAGGLE_S * 1e9
        waiting = {e["rank"]: e["comm_wait_ns"] for e in s["ranks"]}
        assert waiting[0] > waiting[1], "rank 0 waits in the allreduce for the sleeper"
        node = sk["node"]
        assert node["slow_rank"] == 1
        # the stretch that holds the sleep ends at the first op after it: the backward seed
        assert node["key"] == "-:other:aten.ones_like.default#0", node
        assert re.search(r"examples/ddp_train\.py:\d+ in step$", node["source"])


@pytest.mark.slow
def test_shape_mismatch_is_flagged_with_both_source_lines(job: Path) -> None:
    d = _report(job / "shape")
    (m,) = d["steps"][0]["mismatches"]
    assert m["type"] == "shape" and m["index"] == 0
    r0, r1 = m["ranks"]
    assert (r0["rank"], r0["shapes"]) == (0, [[2, 4]]) and (r1["rank"], r1["shapes"]) == (1, [[8]])
    assert r0["source"].endswith(f"test_distributed_jobs.py:{_line('SHAPE-RANK0')} in _shape_mismatch")
    assert r1["source"].endswith(f"test_distributed_jobs.py:{_line('SHAPE-RANK1')} in _shape_mismatch")


@pytest.mark.slow
def test_collective_behind_data_dependent_branch_is_flagged(job: Path, capsys: pytest.CaptureFixture) -> None:
    d = _report(job / "branch")
    (s,) = d["steps"]
    ranks = {e["rank"]: e for e in s["ranks"]}
    assert ranks[0]["complete"] and not ranks[1]["complete"], "rank 1 hung until gloo's timeout"
    (m,) = s["mismatches"]
    assert m["type"] == "missing" and m["index"] == 0
    by_rank = {side["rank"]: side for side in m["ranks"]}
    assert by_rank[1]["source"].endswith(f":{_line('BRANCH-EXTRA')} in _branchy")
    assert by_rank[0]["source"].endswith(f":{_line('BRANCH-COMMON')} in _branchy")
    assert "rank 0 never issued collective #0" in m["message"]

    assert cli_main(["report", str(job / "branch")]) == 0
    text = capsys.readouterr().out
    assert "MISMATCHED COLLECTIVES" in text
    assert f"test_distributed_jobs.py:{_line('BRANCH-EXTRA')}" in text
    assert f"test_distributed_jobs.py:{_line('BRANCH-COMMON')}" in text


@pytest.mark.slow
def test_report_json_has_cross_rank(job: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["report", str(job / "ddp"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cr = report["cross_rank"]
    assert cr["ranks"] == [0, 1] and cr["world_size"] == 2 and cr["mismatch_count"] == 0
    assert [s["step"] for s in cr["steps"]] == list(range(STEPS))
    for s in cr["steps"]:
        for e in s["ranks"]:
            assert e["compute_ns"] > 0 and e["collectives"] >= 2
            assert 0 < e["comm_share"] < 1
            assert e["compute_ns"] + e["comm_ns"] + e["other_ns"] >= e["wall_ns"] * 0.99
