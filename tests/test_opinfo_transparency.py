"""Acceptance (issue 2, "Transparent"): PyTorch's own OpInfo samples give bit-identical results under
the gprof recorder and under a pass-through TorchDispatchMode.

The baseline is a pass-through mode, not plain eager, because any Python mode moves a few linalg ops
onto another code path (docs/recording-facts.md). Every float32 CPU OpInfo runs, with at
most ``SAMPLES_PER_OP`` samples each to stay inside the test budget; one OpInfo is one profiled step,
so the recorder, the step builder and the store all see every op. Outputs *and* inputs (in-place ops)
are compared byte for byte; an op that raises must raise the same exception type in both. A second
test differentiates one sample of every differentiable OpInfo, so every backward formula also runs
under the recorder (and its nodes must link to their forward nodes).
"""
from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import bitwise_equal
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten

import gprof
from gprof.graph.model import StepGraph

SAMPLES_PER_OP = 3
#: backward is dearer; one sample per OpInfo still runs every backward formula once
BACKWARD_SAMPLES_PER_OP = 1
MIN_PASS_RATE = 0.99

#: OpInfos whose result is not a function of their inputs, so no comparison can pass reliably.
EXCLUDED = {
    "empty": "returns uninitialized memory",
    "empty_like": "returns uninitialized memory",
    "empty_strided": "returns uninitialized memory",
    "empty_permuted": "returns uninitialized memory",
    "new_empty": "returns uninitialized memory",
    "new_empty_strided": "returns uninitialized memory",
    "linalg.lstsq": "LAPACK gelsy workspace makes it nondeterministic between identical eager runs",
}

Outcome = tuple  # ("raised", type name) or ("ok", leaves)


class PassThrough(TorchDispatchMode):
    """The baseline: a Python mode that only calls the op."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        return func(*args, **(kwargs or {}))


def _op_id(op: Any) -> str:
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def float32_cpu_ops() -> list[Any]:
    try:
        from torch.testing._internal.common_methods_invocations import op_db
    except ImportError as e:  # pragma: no cover - expecttest is a test dependency
        pytest.skip(f"OpInfo database needs expecttest ({e}); pip install expecttest")
    return [op for op in op_db if torch.float32 in op.supported_dtypes("cpu")]


def run_op(op: Any, mode: Callable[[], AbstractContextManager[Any]], backward: bool = False) -> list[Outcome]:
    """Seeded samples of ``op``, each run inside ``mode()``; returns what came out of each. With
    ``backward``, the outputs' sum is also differentiated w.r.t. every input that requires grad."""
    outcomes: list[Outcome] = []
    cpu_rng = torch.random.default_generator  # torch.manual_seed would also queue a CUDA seed with a stack trace
    cpu_rng.manual_seed(0)
    random.seed(0)  # some sample generators draw Python floats
    np.random.seed(0)
    count = BACKWARD_SAMPLES_PER_OP if backward else SAMPLES_PER_OP
    try:
        # the raw generator: op.sample_inputs() walks inspect.stack() per sample, which costs minutes here
        samples = list(islice(op.sample_inputs_func(op, "cpu", torch.float32, backward), count))
    except Exception as e:  # the sample generator itself fails on this torch
        return [("no samples", type(e).__name__)]
    for s in samples:
        cpu_rng.manual_seed(1234)  # random ops (dropout, bernoulli, ...) draw the same numbers
        try:
            with mode():
                out = op(s.input, *s.args, **s.kwargs)
                grads: Any = ()
                if backward:
                    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
                    ins = [t for t in tree_flatten((s.input, s.args, s.kwargs))[0]
                           if isinstance(t, torch.Tensor) and t.requires_grad]
                    if outs and ins:
                        total = sum(o.sum() if not o.is_complex() else o.abs().sum() for o in outs)
                        grads = torch.autograd.grad(total, ins, allow_unused=True)
        except Exception as e:
            outcomes.append(("raised", type(e).__name__))
            continue
        leaves, _ = tree_flatten((out, grads, s.input, s.args, s.kwargs))
        outcomes.append(("ok", leaves))
    return outcomes


def _same_leaf(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and bitwise_equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (bool, int, float, complex, str, torch.dtype, torch.device, torch.layout, type(None))):
        return a == b
    return True  # an object argument (a module, a callable): same type is all there is to compare


def difference(base: list[Outcome], other: list[Outcome]) -> str | None:
    """Why two runs of the same samples differ, or None when they are bit-identical."""
    if len(base) != len(other):
        return f"{len(base)} samples vs {len(other)}"
    for i, (a, b) in enumerate(zip(base, other)):
        if a[0] != b[0] or (a[0] != "ok" and a[1] != b[1]):
            return f"sample {i}: {a[0]} {a[1] if a[0] != 'ok' else ''} vs {b[0]} {b[1] if b[0] != 'ok' else ''}"
        if a[0] == "ok":
            if len(a[1]) != len(b[1]):
                return f"sample {i}: {len(a[1])} output/input leaves vs {len(b[1])}"
            for j, (x, y) in enumerate(zip(a[1], b[1])):
                if not _same_leaf(x, y):
                    return f"sample {i}, leaf {j}: values differ ({type(x).__name__})"
    return None


def check_opinfos(tmp_path: Path, backward: bool) -> list[StepGraph]:
    """Every OpInfo as one recorded step; asserts the pass rate and returns the recorded graphs."""
    ops = float32_cpu_ops()
    if backward:
        ops = [op for op in ops if op.supports_autograd]
    assert len(ops) > 500, f"expected PyTorch's ~677 float32 CPU OpInfos, found {len(ops)}"
    failures: dict[str, str] = {}
    excluded: dict[str, str] = {}
    compared = 0
    with gprof.profile(logdir=tmp_path, run="opinfo", analyze=False) as prof:
        for op in ops:
            name = _op_id(op)
            if op.name in EXCLUDED:
                excluded[name] = EXCLUDED[op.name]
                continue
            with _disable_current_modes():  # the baseline runs with the recorder off the mode stack
                base = run_op(op, PassThrough, backward)
                nondeterministic = difference(base, run_op(op, PassThrough, backward))
            if nondeterministic is not None:
                excluded[name] = f"nondeterministic: two pass-through runs differ ({nondeterministic})"
                continue
            recorded = run_op(op, contextlib.nullcontext, backward)  # the profile is recording already
            try:
                prof.step()
            except Exception as e:  # saving the step failed: a capture bug for this op
                failures[name] = f"saving the step raised {type(e).__name__}: {e}"
                break
            compared += 1
            with _disable_current_modes():
                why = difference(base, recorded)
            if why is not None:
                failures[name] = why
    recorded_nodes = sum(g.meta.node_count for g in prof.graphs)
    report = "\n".join(f"  FAIL {n}: {why}" for n, why in sorted(failures.items()))
    report += "\n" + "\n".join(f"  excluded {n}: {why}" for n, why in sorted(excluded.items()))
    kind = "forward+backward" if backward else "forward"
    print(f"\nOpInfo transparency ({kind}): {compared - len(failures)}/{compared} passed, "
          f"{len(excluded)} excluded, {recorded_nodes} nodes recorded\n{report}")
    assert compared + len(excluded) == len(ops), f"stopped early:\n{report}"
    assert recorded_nodes > 3 * compared, "the recorder saw almost no ops: was it active?"
    pass_rate = (compared - len(failures)) / compared
    assert pass_rate >= MIN_PASS_RATE, f"only {pass_rate:.2%} of OpInfos bit-identical under the recorder:\n{report}"
    return prof.graphs


def test_opinfo_samples_are_bit_identical_under_recorder(tmp_path) -> None:
    check_opinfos(tmp_path, backward=False)


def test_opinfo_backward_is_bit_identical_and_linked(tmp_path) -> None:
    """Every differentiable OpInfo's backward formula runs under the recorder; each backward node
    must also be linked to the forward node that created its autograd node."""
    graphs = check_opinfos(tmp_path, backward=True)
    backward = [n for g in graphs for n in g.nodes if n.phase == "backward"]
    assert len(backward) > 1000
    unlinked = [n.key for n in backward if n.fwd is None and n.param is None]
    assert len(unlinked) <= 0.01 * len(backward), f"{len(unlinked)} unlinked backward nodes, e.g. {unlinked[:10]}"
