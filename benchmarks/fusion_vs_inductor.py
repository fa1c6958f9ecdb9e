"""Fusion prediction against what Inductor really generates, per example model and phase.

For each example: record one eager training step with gprof and predict the forward and backward
kernels (``gprof.analyses.fusion.predict``); then compile a fresh copy of the model with
``torch.compile`` (Inductor, CPU), run forward+backward on the same batch, and count the
``cpp_fused_*`` kernel launches in the generated code. Each Inductor kernel's name lists the
top-level aten ops it fused (``descriptive_names="original_aten"``), which gives its op set.

Similarity of a predicted group and an Inductor kernel: Jaccard index of their op-name sets, with
views (free on both sides, listed by Inductor only because they were inlined) dropped and in-place
names made functional (``div_`` -> ``div``); eager ops inside an ``nn.Dropout`` are named
``native_dropout`` as AOT tracing names them. Inductor's names also list ops it recomputes from
saved values and the internals of its decompositions (``arange``, ``eq``, ``scalar_tensor``), which
no eager op in that phase matches. So two more columns: *shared*, the Jaccard index with the
kernel's names restricted to ops the eager phase ran at all (the vocabulary a prediction from eager
ops can use), and *recall*, the share of a predicted group's ops that its kernel lists. Groups and kernels are matched one to one, in order,
maximising the summed similarity (an alignment, as both run in dependency order).

    python benchmarks/fusion_vs_inductor.py [mlp cnn transformer dynamic]
"""
from __future__ import annotations

import importlib
import re
import statistics
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gprof  # noqa: E402
from gprof.analyses import fusion, run_all  # noqa: E402

EXAMPLES = ["mlp", "cnn", "transformer", "dynamic"]
VIEWS = {"view", "_unsafe_view", "transpose", "permute", "t", "select", "squeeze", "unsqueeze", "expand", "slice",
         "reshape", "alias", "detach", "as_strided", "unbind", "split", "split_with_sizes", "clone_view"}


@lru_cache(maxsize=1)
def aten_names() -> frozenset[str]:
    return frozenset(n.split("::", 1)[1].split(".", 1)[0] for n in torch._C._dispatch_get_all_op_names()
                     if n.startswith("aten::"))


def split_kernel_name(name: str) -> list[str]:
    """``cpp_fused_native_layer_norm_relu_0`` -> ``['native_layer_norm', 'relu']``: the longest aten
    names that parse the whole body (names are joined with ``_`` and may start with ``_`` themselves)."""
    body = re.sub(r"^cpp_fused_?", "", re.sub(r"_\d+$", "", name))
    names = aten_names()

    @lru_cache(maxsize=None)
    def parse(i: int) -> tuple[str, ...] | None:
        if i >= len(body):
            return ()
        for j in range(len(body), i, -1):
            if (j == len(body) or body[j] == "_") and body[i:j] in names:
                rest = parse(j + 1)
                if rest is not None:
                    return (body[i:j], *rest)
        return None

    got = parse(0)
    return list(got) if got is not None else ([body] if body else [])


#: one user op, several aten spellings (functionalised batch norm is what AOT tracing records)
SAME_OP = {"_native_batch_norm_legit_functional": "native_batch_norm", "_native_batch_norm_legit": "native_batch_norm",
           "_native_batch_norm_legit_no_training": "native_batch_norm"}


def norm(op: str) -> str:
    op = op[:-1] if op.endswith("_") and not op.endswith("__") else op
    return SAME_OP.get(op, op)


def jaccard(a: set[str], b: set[str]) -> float:
    a, b = {norm(x) for x in a} - VIEWS, {norm(x) for x in b} - VIEWS
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def recall(a: set[str], b: set[str]) -> float:
    """Share of the predicted group's (non-view) ops that the Inductor kernel's name lists."""
    a, b = {norm(x) for x in a} - VIEWS, {norm(x) for x in b} - VIEWS
    return len(a & b) / len(a) if a else 1.0


def align(pred: list[set[str]], actual: list[set[str]]) -> list[tuple[int, int]]:
    """Order-preserving one-to-one matching maximising summed similarity; the matched index pairs."""
    n, m = len(pred), len(actual)
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            score[i][j] = max(score[i + 1][j], score[i][j + 1], jaccard(pred[i], actual[j]) + score[i + 1][j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        s = jaccard(pred[i], actual[j])
        if abs(score[i][j] - (s + score[i + 1][j + 1])) < 1e-12:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif score[i][j] == score[i + 1][j]:
            i += 1
        else:
            j += 1
    return out


def predicted(name: str) -> tuple[dict[str, list[set[str]]], int, float]:
    """Predicted op sets per phase, the step's node count and the median time of all analyses on it."""
    ex = importlib.import_module(f"examples.{name}")
    model, opt, batches = ex.make(steps=1)
    with tempfile.TemporaryDirectory() as d:
        with gprof.profile(logdir=d, run=name, analyze=False) as prof:
            ex.step(model, opt, batches[0])
    g = prof.graphs[-1]
    times = []
    for _ in range(5):
        g.analyses = {}
        t0 = time.perf_counter()
        run_all(g)
        times.append(time.perf_counter() - t0)
    by = {n.idx: n for n in g.nodes}
    kernels = fusion.predict(g)
    sets = {p: [{user_op(by[i], g) for i in k.nodes} for k in kernels[p] if k.generated] for p in ("forward", "backward")}
    return sets, len(g.nodes), statistics.median(times)


def user_op(node: fusion.Node, graph: fusion.StepGraph) -> str:
    """The name Inductor gives an eager op: the top-level aten op the user called. Eager dropout runs
    as bernoulli_/div_/mul, which AOT tracing records as one ``native_dropout`` (and its backward)."""
    info = graph.modules.get(node.module or "")
    if info is not None and info.type == "Dropout":
        return "native_dropout" if node.phase == "forward" else "native_dropout_backward"
    return node.op_short


def actual(name: str) -> dict[str, list[set[str]]]:
    from torch._inductor.utils import run_and_get_code

    ex = importlib.import_module(f"examples.{name}")
    model, _, batches = ex.make(steps=1)
    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=False)

    def fwd_bwd() -> None:
        compiled(*batches[0]).backward()

    _, codes = run_and_get_code(fwd_bwd)
    out: dict[str, list[set[str]]] = {"forward": [], "backward": []}
    for code in codes:
        body = code[code.find("def call("):]
        phase = "backward" if "tangents_" in body.split("\n", 3)[1] + body[:2000] else "forward"
        out[phase].extend(set(split_kernel_name(k)) for k in re.findall(r"^\s+(cpp_fused\w*)\(", body, re.M))
    return out


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, Inductor CPU backend; counts are kernel launches in the output code")
    print(f"{'model':<12} {'phase':<9} {'predicted':>9} {'inductor':>8} {'ratio':>6} {'within10%':>9} "
          f"{'matched':>7} {'jaccard':>8} {'min':>7} {'shared':>7} {'recall':>6}")
    rows = []
    analysis_times = []
    for name in names:
        t0 = time.perf_counter()
        pred, n_nodes, analyse_s = predicted(name)
        act = actual(name)
        analysis_times.append((name, n_nodes, analyse_s))
        for phase in ("forward", "backward"):
            p, a = pred[phase], act[phase]
            pairs = align(p, a)
            sims = [jaccard(p[i], a[j]) for i, j in pairs]
            vocab = {norm(op) for group in p for op in group}
            shared = [jaccard(p[i], {op for op in a[j] if norm(op) in vocab}) for i, j in pairs]
            recalls = [recall(p[i], a[j]) for i, j in pairs]
            ratio = len(p) / len(a) if a else float("nan")
            ok = abs(len(p) - len(a)) <= 0.1 * len(a)
            mean = sum(sims) / len(sims) if sims else 0.0
            mean_recall = sum(recalls) / len(recalls) if recalls else 0.0
            mean_shared = sum(shared) / len(shared) if shared else 0.0
            rows.append((name, phase, len(p), len(a), ok, mean, mean_recall, mean_shared))
            print(f"{name:<12} {phase:<9} {len(p):>9} {len(a):>8} {ratio:>6.2f} {'yes' if ok else 'NO':>9} "
                  f"{len(sims):>7} {mean:>8.2f} {min(sims, default=0):>7.2f} {mean_shared:>7.2f} {mean_recall:>6.2f}")
        tot_p = sum(r[2] for r in rows if r[0] == name)
        tot_a = sum(r[3] for r in rows if r[0] == name)
        print(f"{name:<12} {'total':<9} {tot_p:>9} {tot_a:>8} {tot_p / tot_a:>6.2f} "
              f"{'yes' if abs(tot_p - tot_a) <= 0.1 * tot_a else 'NO':>9}   ({time.perf_counter() - t0:.0f} s)")
    print(f"phases within +-10%: {sum(r[4] for r in rows)}/{len(rows)}; "
          f"mean similarity over phases {sum(r[5] for r in rows) / len(rows):.2f}; "
          f"phases with mean similarity >= 0.8: {sum(r[5] >= 0.8 for r in rows)}/{len(rows)}; "
          f"shared-vocabulary jaccard {sum(r[7] for r in rows) / len(rows):.2f} "
          f"(>= 0.8 in {sum(r[7] >= 0.8 for r in rows)}/{len(rows)}); mean recall {sum(r[6] for r in rows) / len(rows):.2f}")
    print("all analyses on the recorded step (first step, optimizer included), median of 5: " + "; ".join(
        f"{name} {n} nodes {s * 1e3:.1f} ms" for name, n, s in analysis_times))


if __name__ == "__main__":
    main(sys.argv[1:] or EXAMPLES)
