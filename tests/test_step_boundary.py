"""``step_boundary="optimizer"``: each Optimizer.step() ends a step exactly as prof.step() would,
the hook lives only inside the block, and ops after the last optimizer step are saved as a
partial step."""
from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import gprof
from gprof.graph.model import Phase
from gprof.store import load


def _model_and_batches(seed: int = 0) -> tuple[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    batches = [(torch.randn(8, 16), torch.randn(8, 4)) for _ in range(3)]
    return model, batches


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor],
           prof: Any = None) -> None:
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    if prof is not None:
        prof.step()


def _shape(graph: Any) -> list[tuple[str, str, str | None]]:
    return [(n.op, n.phase, n.module) for n in graph.nodes]


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=1e-3),
], ids=["sgd", "adam"])
def test_optimizer_boundary_records_the_same_steps_as_prof_step(tmp_path: Any, make_opt: Any) -> None:
    graphs, params = {}, {}
    for mode in ("manual", "optimizer"):
        model, batches = _model_and_batches()
        opt = make_opt(model.parameters())
        with gprof.profile(logdir=tmp_path, run=mode, analyze=False, step_boundary=mode) as prof:
            for b in batches:
                _train(model, opt, b, prof if mode == "manual" else None)
        graphs[mode] = prof.graphs
        params[mode] = [p.detach().clone() for p in model.parameters()]

    manual, by_opt = graphs["manual"], graphs["optimizer"]
    assert len(manual) == len(by_opt) == 3
    assert [g.meta.step for g in by_opt] == [0, 1, 2]
    for a, b in zip(manual, by_opt):
        # zero_grad() sets grads to None (no aten ops), so both boundaries cut the same ops
        assert _shape(a) == _shape(b)
        assert not b.meta.partial
        phases = {n.phase for n in b.nodes}
        assert {Phase.FORWARD, Phase.BACKWARD, Phase.OPTIMIZER} <= phases
        assert b.nodes[-1].phase == Phase.OPTIMIZER, "a step ends with its optimizer update"
    for pa, pb in zip(params["manual"], params["optimizer"]):
        assert torch.equal(pa, pb), "profiling never changes results"
    assert [load(tmp_path / "optimizer", step=i).meta.step for i in range(3)] == [0, 1, 2]


def test_trailing_ops_are_a_partial_step(tmp_path: Any) -> None:
    model, batches = _model_and_batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gprof.profile(logdir=tmp_path, run="tail", analyze=False, step_boundary="optimizer") as prof:
        for b in batches[:2]:
            _train(model, opt, b)
        with torch.no_grad():  # an evaluation after the last optimizer step
            model(batches[2][0])
    assert [g.meta.partial for g in prof.graphs] == [False, False, True]
    tail = prof.graphs[-1]
    assert tail.nodes and all(n.phase == Phase.FORWARD for n in tail.nodes)
    stored = [load(tmp_path / "tail", step=i).meta.partial for i in range(3)]
    assert stored == [False, False, True], "the field is stored in the step file"


def test_no_optimizer_step_means_one_whole_step(tmp_path: Any) -> None:
    model, batches = _model_and_batches()
    with gprof.profile(logdir=tmp_path, run="none", analyze=False, step_boundary="optimizer") as prof:
        model(batches[0][0]).sum().backward()
    assert len(prof.graphs) == 1 and not prof.graphs[0].meta.partial


def test_prof_step_is_a_no_op_that_warns_once(tmp_path: Any) -> None:
    model, batches = _model_and_batches()
    opt = torch.optim.Adam(model.parameters())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gprof.profile(logdir=tmp_path, run="both", analyze=False, step_boundary="optimizer") as prof:
            for b in batches:
                _train(model, opt, b, prof)
    assert len(prof.graphs) == 3, "prof.step() after optimizer.step() adds no empty or extra step"
    ours = [w for w in caught if "step_boundary='optimizer'" in str(w.message)]
    assert len(ours) == 1


def test_the_hook_lives_only_inside_the_block(tmp_path: Any) -> None:
    from torch.optim.optimizer import _global_optimizer_post_hooks

    before = len(_global_optimizer_post_hooks)
    model, batches = _model_and_batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gprof.profile(logdir=tmp_path, run="hook", analyze=False, step_boundary="optimizer") as prof:
        assert len(_global_optimizer_post_hooks) == before + 1
        _train(model, opt, batches[0])
    assert len(_global_optimizer_post_hooks) == before
    _train(model, opt, batches[1])  # after the block: no step recorded, nothing raised
    assert prof.step_num == 1


def test_bad_step_boundary_is_refused() -> None:
    with pytest.raises(ValueError, match="step_boundary"):
        gprof.profile(step_boundary="epoch")  # type: ignore[arg-type]


def test_public_debugger_surface(tmp_path: Any) -> None:
    model, batches = _model_and_batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[str] = []
    saved: list[Any] = []

    def obs(node: Any, *rest: Any) -> None:
        seen.append(node.key)

    def on_step(graph: Any, path: Any) -> None:
        saved.append(path)

    prof = gprof.profile(logdir=tmp_path, run="pub", analyze=False, rank=1, world_size=2)
    prof.add_observer(obs)
    prof.add_step_callback(on_step)
    with prof:
        _train(model, opt, batches[0], prof)
        prof.remove_observer(obs)
        prof.remove_step_callback(on_step)
        prof.remove_observer(obs)  # removing twice is harmless
        _train(model, opt, batches[1], prof)
    assert (prof.rank, prof.world_size) == (1, 2)
    assert prof.data_dir == prof.run_dir / "plugins" / "gprof"
    assert len(saved) == 1 and saved[0].parent == prof.data_dir
    assert seen == [n.key for n in prof.graphs[0].nodes]
    names = prof.param_names()
    assert names[id(model[0].weight)] == "0.weight" and names[id(model[2].bias)] == "2.bias"


def test_stop_without_saving_drops_only_the_step_in_progress(tmp_path: Any) -> None:
    """``prof.stop(save=False)`` (the debugger's launching process at ``mp.spawn``): the steps before it are
    saved, the ops since the last boundary are not, and the block's own end afterwards does nothing."""
    model, batches = _model_and_batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gprof.profile(logdir=tmp_path, run="s", step_boundary="optimizer") as prof:
        _train(model, opt, batches[0])
        model(batches[1][0]).sum()  # set-up after the last optimizer step: dropped
        prof.stop(save=False)
        model(batches[2][0]).sum()  # after the stop: not recorded at all
    files = sorted(p.name for p in prof.data_dir.glob("step*.sqlite"))
    assert files == ["step000000.rank0-of-1.sqlite"]
    assert not load(prof.run_dir, step=0).meta.partial
    with pytest.raises(RuntimeError, match="outside"):
        prof.step()
