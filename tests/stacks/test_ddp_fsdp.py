"""DDP and FSDP2 on 2 real gloo processes (issue 13 point 6): DDP's gradient copies are attributed
and linked; FSDP2 records each rank's parameters at their local shard size; all-gathers and
reduce-scatters are collective nodes; profiled training is bit-identical to unprofiled.

One spawned job runs both (start-up dominates), each rank saving its numbers for the test to check."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from stackutil import train
from torch import nn

import gprof
from examples import ddp_train

STEPS = 3


class _WithLoss(nn.Module):
    """The loss inside a module, as Hugging Face models have it: every forward/backward op has one."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(self.net(x), y)


def _train(rank: int, wrap: str, prof: gprof.profile | None) -> tuple[list[torch.Tensor], nn.Module]:
    torch.manual_seed(0)
    model = _WithLoss()
    if wrap == "ddp":
        model = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=ddp_train.BUCKET_CAP_MB)
    else:
        from torch.distributed.fsdp import fully_shard

        for layer in model.net:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(100 + rank)
    losses = train(lambda: model(torch.randn(16, 32, generator=g), torch.randn(16, 4, generator=g)), opt, STEPS, prof)
    return losses, model


def _local_bytes(model: nn.Module) -> int:
    total = 0
    for p in model.parameters():
        local = getattr(p, "_local_tensor", p)
        total += local.numel() * local.element_size()
    return total


def _job(logdir: str) -> None:
    rank, _ = ddp_train.init_gloo(timeout_s=60)
    out: dict[str, object] = {}
    for wrap in ("ddp", "fsdp"):
        reference, _ = _train(rank, wrap, None)
        with gprof.profile(logdir=logdir, run=wrap) as prof:
            profiled, model = _train(rank, wrap, prof)
        out[wrap] = {"identical": all(torch.equal(a, b) for a, b in zip(reference, profiled)),
                     "local_param_bytes": _local_bytes(model)}
    Path(logdir, f"rank{rank}.json").write_text(json.dumps(out))
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logdir = tmp_path_factory.mktemp("ddp_fsdp")
    ddp_train.spawn_local(_job, 2, (str(logdir),), timeout_s=150)
    return logdir


@pytest.mark.parametrize("rank", [0, 1])
def test_ddp_gradient_sync_attributed_and_linked(job: Path, rank: int) -> None:
    numbers = json.loads((job / f"rank{rank}.json").read_text())["ddp"]
    assert numbers["identical"]
    for step in range(STEPS):
        graph = gprof.load(job / "ddp", step=step, rank=rank)
        fb = [n for n in graph.nodes if n.phase in ("forward", "backward")]
        bw = [n for n in fb if n.phase == "backward"]
        coverage = sum(n.module is not None for n in fb) / len(fb)
        linked = sum(n.fwd is not None or n.param is not None for n in bw) / len(bw)
        assert coverage >= 0.99 and linked >= 0.99, (step, coverage, linked)
        copies = [n for n in bw if n.op == "aten.copy_.default" and n.grad_fn is None]
        assert copies and all(n.param is not None and n.module == n.param.rpartition(".")[0] for n in copies)
        assert any(n.attrs.get("kind") == "allreduce" for n in bw)


@pytest.mark.parametrize("rank", [0, 1])
def test_fsdp2_local_shard_bytes_and_collectives(job: Path, rank: int) -> None:
    numbers = json.loads((job / f"rank{rank}.json").read_text())["fsdp"]
    assert numbers["identical"]
    for step in range(1, STEPS):  # step 0 creates the optimizer state inside the step
        graph = gprof.load(job / "fsdp", step=step, rank=rank)
        assert graph.memory.by_category["parameter"] == numbers["local_param_bytes"]
        assert graph.memory.by_category["optimizer"] >= 2 * numbers["local_param_bytes"]
        assert graph.memory.by_category["optimizer"] < 3 * numbers["local_param_bytes"]
        kinds = {n.attrs.get("kind") for n in graph.nodes}
        assert {"allgatherbase", "reducescatterbase"} <= kinds
