"""Fusion prediction against what Inductor really generates, per example model and phase.

For each example: record one eager training step with gprof and predict the forward and backward
kernels (``gprof.analyses.fusion.predict``); then compile a fresh copy of the model with
``torch.compile`` (Inductor, CPU, ``dynamic=False``, caches off so that code is generated), run
forward+backward on the same batch, and count the ``cpp_fused_*`` kernel launches in the output code.

What is compared, per generated kernel: the set of *eager-level ops whose work it does*.

- Inductor side: the kernel's FX origins (``aggregate_origins`` of its scheduler nodes, recorded
  from ``CppScheduling.define_kernel``), each named by ``meta["original_aten"]``, the top-level aten
  op that AOTAutograd traced (the same list that ``descriptive_names="original_aten"`` joins into the
  kernel name). Six kinds of origin are left out because they name no op whose work the kernel fuses;
  each is counted and printed with ``-v``:
  ``view`` (free, listed only because it was inlined); ``constant`` (an origin that reads no tensor:
  ``full``/``scalar_tensor``/``iota``, inlined as a literal or index expression, and shared between ops
  by the joint graph's deduplication, so the mlp's ReLU-backward kernels carry ``nll_loss_forward``
  through a shared 0.0); ``rewrite`` (nodes an Inductor pattern pass traced afresh: no autograd
  ``seq_nr`` and named by their own op, e.g. the ``arange``/``eq`` of ``scatter_upon_const_tensor``
  replacing nll_loss_backward's scatter, whose output node keeps the replaced op's name); ``extern
  input`` (an origin that is itself an extern or fallback call, ``convolution_backward``: the kernel
  only wrote that call's input in the layout the call needs); ``write-back`` (the ``copy_`` with which
  AOTAutograd writes an input mutation back, e.g. batch norm's running statistics: eager did that
  mutation inside the op that is listed); ``read`` (an origin of a buffer the kernel reads that
  another kernel wrote: a reduction lowered while its input was still an unrealised pointwise node
  inherits that node's origins, ``GraphLowering.run_node``'s ``gather_origins``, though the input is
  realised later and the kernel only loads it, e.g. a bias-gradient ``sum`` after the kernel that
  wrote the gradient for a matmul).
- Prediction side: the ops of the group's eager nodes plus ``Kernel.also`` (forward ops the
  partitioner recomputes in that backward kernel, a backward op's mask computed in the forward) and
  ``Kernel.extra`` (ops no eager node ran: the zero-gradient backward of a value leaving a graph at a
  graph break), named
  as AOTAutograd names them: in-place names made functional (``div_`` -> ``div``), and eager's CPU
  dropout (``bernoulli_`` mask, its scaling, the ``mul`` by it) named ``native_dropout``, the backward
  of that ``mul`` ``native_dropout_backward``.

Columns: ``jaccard``, the mean Jaccard index of those two sets over matched pairs (the target), and
``min``; ``names``, the same prediction against the ops parsed from the kernel *names* with only views
dropped (the raw figure, no provenance cleaning); ``recall``, the share of a group's ops that its
kernel lists. Groups and kernels are matched one to one, in order, maximising the summed Jaccard
index (an alignment, as both run in dependency order); ``-v`` prints every pair.

Held-out models: ``gpt2`` (a 2-layer GPT-2-like model, width 128) and ``tiny`` (20 small Linear
layers) from ``benchmarks/_common.py`` (``make_gpt``/``make_tiny``, trained with the examples' step) were
not used to develop the rules. They run only when named, are printed as "held-out (not tuned on)" and
are left out of the example summary line (they get a line of their own).

    python benchmarks/fusion_vs_inductor.py [-v] [mlp cnn transformer dynamic] [gpt2 tiny]
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import re
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from unittest import mock

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gprof  # noqa: E402
from gprof.analyses import fusion, run_all  # noqa: E402
from gprof.analyses.gpu_specs import GpuSpec, gpu_spec  # noqa: E402
from gprof.graph.model import StepGraph  # noqa: E402

try:
    from benchmarks._inductor_harness import replayed_scalars, scheduler_for
except ImportError:  # run as a script: benchmarks/ is on sys.path
    from _inductor_harness import replayed_scalars, scheduler_for  # type: ignore[no-redef]

EXAMPLES = ["mlp", "cnn", "transformer", "dynamic"]
#: models the rules were not developed against (``benchmarks/_common.py``); opt-in by name
HELD_OUT = ["gpt2", "tiny"]
VIEWS = {"view", "_unsafe_view", "transpose", "permute", "t", "select", "squeeze", "unsqueeze", "expand", "slice",
         "reshape", "alias", "detach", "as_strided", "unbind", "split", "split_with_sizes", "clone_view"}


@lru_cache(maxsize=1)
def aten_names() -> frozenset[str]:
    return frozenset(n.split("::", 1)[1].split(".", 1)[0] for n in torch._C._dispatch_get_all_op_names()
                     if n.startswith("aten::"))


def split_kernel_name(name: str) -> list[str]:
    """``cpp_fused_native_layer_norm_relu_0`` -> ``['native_layer_norm', 'relu']``: the longest aten
    names that parse the whole body (names are joined with ``_`` and may start with ``_`` themselves)."""
    body = re.sub(r"^(cpp|triton_[a-z]+)_fused_?", "", re.sub(r"_\d+$", "", name))
    names = aten_names()

    @cache
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
    """Share of the predicted group's (non-view) ops that the Inductor kernel lists."""
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


def load(name: str) -> tuple[Any, Any]:
    """``(make, step)`` of an example or a held-out model; ``make()`` returns (model, opt, batches)."""
    if name in HELD_OUT:
        try:
            from benchmarks import _common as C
        except ImportError:  # run as a script: benchmarks/ is on sys.path
            import _common as C
        from examples._harness import step

        return (lambda: C.MODELS[name](steps=1)), step
    ex = importlib.import_module(f"examples.{name}")
    return (lambda: ex.make(steps=1)), ex.step


def harness_gpu() -> GpuSpec:
    """The device Inductor's Triton scheduler sees here: on a CPU its ``DeviceProperties`` report the CPU
    count as SMs, which its split-reduction heuristic reads, and lowerings take their CPU branches (``cat``);
    the prediction is checked with that count and those branches."""
    from torch._inductor.runtime.hints import DeviceProperties

    props = DeviceProperties.create(torch.device("cpu"))
    return dataclasses.replace(gpu_spec(None), name="Triton on this CPU", sm_count=props.multi_processor_count,
                               cpu_tensors=True)


def predicted(name: str, target: str = "cpu", gpu: str | None = None) -> tuple[dict[str, list[set[str]]], int, float]:
    """Predicted op sets per phase, the step's node count and the median time of all analyses on it;
    ``gpu`` names the GPU of a ``cuda`` prediction (default: the Triton harness on this CPU)."""
    make, step = load(name)
    model, opt, batches = make()
    with tempfile.TemporaryDirectory() as d:
        with gprof.profile(logdir=d, run=name, analyze=False) as prof:
            step(model, opt, batches[0])
        g = prof.graphs[-1]  # (read before the directory goes: a recorded step may be loaded from its file)
    times = []
    for _ in range(5):
        g.analyses = {}
        t0 = time.perf_counter()
        run_all(g, target=target)
        times.append(time.perf_counter() - t0)
    by = {n.idx: n for n in g.nodes}
    kernels = fusion.predict(g, target, gpu or (harness_gpu() if target == "cuda" else None))
    names = aot_names(g)
    sets = {p: [{names.get(i, by[i].op_short) for i in k.nodes + k.also} | set(k.extra)
                for k in kernels[p] if k.generated]
            for p in ("forward", "backward")}
    return sets, len(g.nodes), statistics.median(times)


def aot_names(graph: StepGraph) -> dict[int, str]:
    """Eager ops that AOTAutograd traces under another name. Eager dropout on CPU runs as a
    ``bernoulli_`` mask, an in-place scaling of it and a ``mul`` by it (``at::dropout``'s
    ``_dropout_impl``); AOTAutograd traces one ``native_dropout``, and the backward of that ``mul``
    (``grad * mask``) as ``native_dropout_backward``."""
    producers = graph.producers()
    mask: set[int] = set()
    out: dict[int, str] = {}
    for n in graph.nodes:
        if n.phase != "forward":
            continue
        ps = producers.get(n.idx, [])
        if n.op_short.startswith("bernoulli") or (n.op_short in ("div_", "mul_") and ps and all(p in mask for p in ps)):
            mask.add(n.idx)
            out[n.idx] = "native_dropout"
        elif n.op_short == "mul" and any(p in mask for p in ps):
            out[n.idx] = "native_dropout"
    dropout_mul = {i for i, name in out.items() if name == "native_dropout" and i not in mask}
    for n in graph.nodes:
        if n.phase == "backward" and n.fwd in dropout_mul and n.op_short == "mul":
            out[n.idx] = "native_dropout_backward"
    return out


#: ops Inductor's CPU backend calls as extern kernels or fallbacks (no max-autotune templates)
EXTERN_TARGETS = ("mm", "addmm", "bmm", "baddbmm", "convolution", "_int_mm")


def read_origins(nodes, keep_own: bool = False) -> set:
    """FX origins of the buffers a kernel reads that another kernel wrote: their work is done there.
    A reduction lowered while its input was still an unrealised pointwise node inherits that node's
    origins (``GraphLowering.run_node``: ``origins |= gather_origins(args, kwargs)``, which collects the
    origins of unrealised inputs), though the input is realised later and the kernel only loads it.
    ``keep_own`` (the Triton check) keeps the FX node each of the kernel's buffers was lowered from
    (``origin_node``): the second stage of a split reduction reads the first stage's partial sums, which
    carry the same origins, and finishes that node's work. The C++ check keeps the classification its
    recorded figures were measured with (it would move one transformer-forward pair from 0.91 to 0.86)."""
    from torch._inductor.virtualized import V

    written = {name for n in nodes for name in n.get_buffer_names()}
    out: set = set()
    for n in nodes:
        for dep in n.read_writes.reads:
            buf = V.graph.scheduler.name_to_buf.get(dep.name) if V.graph.scheduler else None
            if dep.name in written or buf is None:
                continue
            out |= set(getattr(buf.node, "origins", ()) or ())
    if keep_own:  # the FX nodes this kernel's buffers were lowered from are its own work
        out -= {getattr(n.node, "origin_node", None) for n in nodes if getattr(n, "node", None) is not None}
    return out


def classify_origins(origins, read: set | frozenset = frozenset()) -> tuple[set[str], dict[str, set[str]]]:
    """(fused op names, {reason: names left out}) of one kernel's FX origins (see the docstring)."""
    import torch._inductor.lowering as lowering

    aten = torch.ops.aten
    kept: set[str] = set()
    dropped: dict[str, set[str]] = {}
    for o in origins:
        if o.op != "call_function":
            continue
        oa = o.meta.get("original_aten")
        if isinstance(oa, torch._ops.OpOverload):
            name = oa._overloadpacket.__name__
        elif isinstance(oa, torch._ops.HigherOrderOperator):
            name = str(oa.name())
        else:
            continue  # Inductor's own name skips these too
        packet = getattr(o.target, "_overloadpacket", None)
        if norm(name) in VIEWS:
            reason = "view"
        elif not o.all_input_nodes:
            reason = "constant"
        elif o.meta.get("seq_nr") is None and isinstance(oa, torch._ops.OpOverload) and packet is oa._overloadpacket:
            reason = "rewrite"
        elif o.target in lowering.fallbacks or (packet is not None and packet.__name__ in EXTERN_TARGETS):
            reason = "extern input"
        elif o.target is aten.copy_.default and getattr(o.args[0], "op", None) == "placeholder":
            reason = "write-back"
        elif o in read:
            reason = "read"
        else:
            kept.add(name)
            continue
        dropped.setdefault(reason, set()).add(name)
    return kept, dropped


@dataclass
class InductorKernel:
    name: str
    ops: set[str]  # origins, cleaned
    name_ops: set[str]  # parsed from the kernel name (raw)
    dropped: dict[str, set[str]]


def actual(name: str, target: str = "cpu") -> dict[str, list[InductorKernel]]:
    """Generated kernel launches per phase of one compiled forward+backward, scheduled for ``target``."""
    from torch._inductor.graph import GraphLowering
    from torch._inductor.utils import aggregate_origins

    model, _, batches = load(name)[0]()
    if target == "cuda" and torch.cuda.is_available():
        model, batches = model.cuda(), [tuple(t.cuda() for t in b) for b in batches]
    pending: dict[str, tuple[set[str], dict[str, set[str]]]] = {}
    graphs: list[tuple[str, dict[str, tuple[set[str], dict[str, set[str]]]]]] = []

    def save_output_code(code: str) -> None:
        graphs.append((code, dict(pending)))
        pending.clear()

    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=False)
    with scheduler_for(target) as (scheduling, launch):
        define_kernel = scheduling.define_kernel

        def recording_define_kernel(self, src_code, nodes, *args, **kwargs):
            kernel_name = define_kernel(self, src_code, nodes, *args, **kwargs)
            nodes = [n for n in nodes if hasattr(n, "read_writes")]  # Triton's schedule holds markers too
            pending.setdefault(kernel_name, classify_origins(aggregate_origins(nodes),
                                                             read_origins(nodes, keep_own=target == "cuda")))
            return kernel_name

        stood_in = target == "cuda" and not torch.cuda.is_available()
        values = replayed_scalars(model, batches[0]) if stood_in else contextlib.nullcontext()
        with mock.patch.object(scheduling, "define_kernel", recording_define_kernel), \
                mock.patch.object(GraphLowering, "save_output_code", staticmethod(save_output_code)), values:
            compiled(*batches[0]).backward()
    out: dict[str, list[InductorKernel]] = {"forward": [], "backward": []}
    for code, kernels in graphs:
        body = code[code.find("def call("):]
        phase = "backward" if "tangents_" in body.split("\n", 3)[1] + body[:2000] else "forward"
        for k in re.findall(launch, body, re.M):
            ops, dropped = kernels[k]
            out[phase].append(InductorKernel(k, ops, set(split_kernel_name(k)), dropped))
    return out


def fmt(ops: set[str]) -> str:
    return "{" + ", ".join(sorted({norm(o) for o in ops} - VIEWS)) + "}"


def summary(label: str, rows: list[tuple]) -> str:
    n = len(rows)
    return (f"{label}: phases within +-10%: {sum(r[4] for r in rows)}/{n}; "
            f"mean jaccard over phases {sum(r[5] for r in rows) / n:.2f} "
            f"(>= 0.8 in {sum(r[5] >= 0.8 for r in rows)}/{n}); "
            f"on kernel names {sum(r[7] for r in rows) / n:.2f} "
            f"(>= 0.8 in {sum(r[7] >= 0.8 for r in rows)}/{n}); mean recall {sum(r[6] for r in rows) / n:.2f}")


def main(names: list[str], verbose: bool = False, target: str = "cpu") -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")
    backend = ("Inductor CPU backend" if target == "cpu" else
               f"Inductor Triton scheduler run on this CPU (SMs as it sees them: {harness_gpu().sm_count})")
    print(f"torch {torch.__version__}, {backend}; counts are kernel launches in the output code")
    header = (f"{'model':<12} {'phase':<9} {'predicted':>9} {'inductor':>8} {'ratio':>6} {'within10%':>9} "
              f"{'matched':>7} {'jaccard':>8} {'min':>7} {'names':>7} {'recall':>6}")
    print(header)
    rows = []
    analysis_times = []
    dropped_total: dict[str, int] = {}
    for name in names:
        if name in HELD_OUT and not any(r[0] in HELD_OUT for r in rows):
            print("held-out (not tuned on):")
        t0 = time.perf_counter()
        pred, n_nodes, analyse_s = predicted(name, target)
        act = actual(name, target)
        analysis_times.append((name, n_nodes, analyse_s))
        detail = []
        for phase in ("forward", "backward"):
            p, a = pred[phase], act[phase]
            pairs = align(p, [k.ops for k in a])
            sims = [jaccard(p[i], a[j].ops) for i, j in pairs]
            raw = [jaccard(p[i], a[j].name_ops) for i, j in pairs]
            recalls = [recall(p[i], a[j].ops) for i, j in pairs]
            for k in a:
                for reason, ops in k.dropped.items():
                    dropped_total[reason] = dropped_total.get(reason, 0) + len(ops)
            ratio = len(p) / len(a) if a else float("nan")
            ok = abs(len(p) - len(a)) <= 0.1 * len(a)
            mean = sum(sims) / len(sims) if sims else 0.0
            mean_raw = sum(raw) / len(raw) if raw else 0.0
            mean_recall = sum(recalls) / len(recalls) if recalls else 0.0
            rows.append((name, phase, len(p), len(a), ok, mean, mean_recall, mean_raw))
            print(f"{name:<12} {phase:<9} {len(p):>9} {len(a):>8} {ratio:>6.2f} {'yes' if ok else 'NO':>9} "
                  f"{len(sims):>7} {mean:>8.2f} {min(sims, default=0):>7.2f} {mean_raw:>7.2f} {mean_recall:>6.2f}")
            if verbose:
                matched = dict(pairs)
                detail.append(f"  {name} {phase}")
                for i, group in enumerate(p):
                    if i in matched:
                        k = a[matched[i]]
                        detail.append(f"    P{i} ~ {k.name}  jaccard {jaccard(group, k.ops):.2f}")
                        detail.append(f"       predicted {fmt(group)}")
                        detail.append(f"       inductor  {fmt(k.ops)}"
                                      + "".join(f"; {r}: {fmt(ops)}" for r, ops in sorted(k.dropped.items())
                                                if r != "view"))
                    else:
                        detail.append(f"    P{i} unmatched {fmt(group)}")
                for j, k in enumerate(a):
                    if j not in matched.values():
                        detail.append(f"    {k.name} unmatched {fmt(k.ops)}")
        tot_p = sum(r[2] for r in rows if r[0] == name)
        tot_a = sum(r[3] for r in rows if r[0] == name)
        print(f"{name:<12} {'total':<9} {tot_p:>9} {tot_a:>8} {tot_p / tot_a:>6.2f} "
              f"{'yes' if abs(tot_p - tot_a) <= 0.1 * tot_a else 'NO':>9}   ({time.perf_counter() - t0:.0f} s)")
        if detail:
            print("\n".join(detail))
    for label, group in (("examples", [r for r in rows if r[0] not in HELD_OUT]),
                         ("held-out (not tuned on)", [r for r in rows if r[0] in HELD_OUT])):
        if group:
            print(summary(label, group))
    print("origin names left out (count over kernels): " + ", ".join(
        f"{r} {n}" for r, n in sorted(dropped_total.items())))
    print("all analyses on the recorded step (first step, optimizer included), median of 5: " + "; ".join(
        f"{name} {n} nodes {s * 1e3:.1f} ms" for name, n, s in analysis_times))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=EXAMPLES,
                        help=f"examples: {', '.join(EXAMPLES)} (default: all); held-out: {', '.join(HELD_OUT)}")
    parser.add_argument("--target", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: the C++ backend; cuda: Triton, scheduled here without a GPU (needs triton)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every predicted group against its kernel")
    args = parser.parse_args()
    unknown = [a for a in args.models if a not in EXAMPLES + HELD_OUT]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; examples: {', '.join(EXAMPLES)}; "
                     f"held-out: {', '.join(HELD_OUT)}")
    # examples first, then the held-out models under their own heading
    main(sorted(args.models, key=lambda a: a in HELD_OUT), verbose=args.verbose, target=args.target)
