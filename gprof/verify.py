"""``gprof.verify``: apply the compile suggestions with torch.compile and measure what they do.

For each suggested region (and for all of them together) it counts the graph breaks with
``torch._dynamo.explain``, counts the kernels Inductor generated (``cpp_fused_*`` on CPU,
``triton_*`` on GPU, plus extern calls), and times eager against compiled steps, interleaved, as
medians. It also explains the whole model and checks that every break Dynamo reports is in the
step's hazard list. The verdict is reported as measured, slower included: on a 2-core CPU the
compiled step is often slower than eager.

``step_fn(model, batch)`` runs one training step as your loop does (forward, backward and the
optimizer if it has one). verify runs real steps, so the weights change: run it on a throwaway copy
when they matter.
"""
from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from gprof.graph.formatting import fmt_ns

_KERNEL_CALL = re.compile(r"^\s+((?:cpp_fused|triton_)\w*)\(", re.M)
_EXTERN_CALL = re.compile(r"extern_kernels\.\w+\(|torch\.ops\.\w+\.\w+\.\w+\(")


def count_kernels(codes: Sequence[str]) -> dict[str, int]:
    """Kernel launches in Inductor output code: generated (``cpp_fused_*``/``triton_*``) and extern."""
    generated = extern = 0
    for code in codes:
        body = code[code.find("def call("):] if "def call(" in code else code
        generated += len(_KERNEL_CALL.findall(body))
        extern += len(_EXTERN_CALL.findall(body))
    return {"generated": generated, "extern": extern}


def _source_key(source: str | None) -> tuple[str, int] | None:
    """``examples/dynamic.py:34 in forward`` -> ``('dynamic.py', 34)``."""
    if not source:
        return None
    m = re.match(r"(.+?):(\d+)", source)
    return (os.path.basename(m.group(1)), int(m.group(2))) if m else None


def _break_reasons(explained: Any) -> list[dict[str, Any]]:
    out = []
    for br in getattr(explained, "break_reasons", []) or []:
        stack = list(getattr(br, "user_stack", []) or [])
        frame = stack[-1] if stack else None
        src = f"{frame.filename}:{frame.lineno} in {frame.name}" if frame is not None else None
        out.append({"reason": str(getattr(br, "reason", br)).strip().splitlines()[0][:300], "source": src})
    return out


def _dynamo_refusals() -> list[str]:
    """First lines of what Dynamo declined while explaining (its counters): the only account of a
    skipped frame or an unsupported construct (a checkpointed layer's side effect), which
    ``explain`` neither counts as a graph nor itemises as a break."""
    from torch._dynamo.utils import counters

    seen = dict.fromkeys(str(k).strip().splitlines()[0][:200] for kind in ("unimplemented", "graph_break")
                         for k in counters.get(kind, {}))
    return list(seen)


def _explain(fn: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Graphs and breaks by ``torch._dynamo.explain``. Where Dynamo compiled nothing (explain then
    says 0 graphs and -1 breaks) the result says so, with Dynamo's reasons, instead of a count;
    breaks explain counted without itemising come with those reasons too."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    try:
        ex = torch._dynamo.explain(fn)(*args, **kwargs)
    except Exception as e:  # explain itself can fail on exotic code; say so instead of crashing
        return {"error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = {"graph_count": ex.graph_count, "graph_breaks": max(ex.graph_break_count, 0),
                           "break_reasons": _break_reasons(ex)}
    if not ex.graph_count:
        out["never_compiled"] = "; ".join(_dynamo_refusals()) or "Dynamo skipped every frame of it"
    elif ex.graph_break_count > len(out["break_reasons"]):
        out["unlisted_breaks"] = _dynamo_refusals()
    return out


def _explain_lines(e: dict[str, Any], indent: str) -> list[str]:
    """The graph/break line of an explained model or region, and why it never compiled, if it did not."""
    if "never_compiled" in e:
        return [f"{indent}never compiled: Dynamo made no graph of it ({e['never_compiled'][:300]})"]
    lines = [f"{indent}{e['graph_count']} graph(s), {e['graph_breaks']} break(s)"]
    if e.get("unlisted_breaks"):
        lines.append(f"{indent}breaks explain does not itemise; Dynamo declined: {'; '.join(e['unlisted_breaks'])[:300]}")
    return lines


def _record_inputs(model: nn.Module, fqns: list[str], run: Callable[[], Any],
                   calls: dict[str, int] | None = None) -> dict[str, tuple[tuple, dict]]:
    """First call's (args, kwargs) of each module in ``fqns`` during one eager step; ``calls`` gets
    how many times each was called."""
    calls = {} if calls is None else calls
    seen: dict[str, tuple[tuple, dict]] = {}
    handles = []
    for fqn in dict.fromkeys(fqns):
        mod = model.get_submodule(fqn) if fqn else model

        def hook(_m: nn.Module, args: tuple, kwargs: dict, fqn: str = fqn) -> None:
            calls[fqn] = calls.get(fqn, 0) + 1
            if fqn not in seen:
                seen[fqn] = (tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args), dict(kwargs))

        handles.append(mod.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def _profile_suggestions(model: nn.Module, step_fn: Callable, batch: Any) -> tuple[list[dict], list[dict], Any]:
    from gprof.capture.profile import profile

    with tempfile.TemporaryDirectory(prefix="gprof-verify-") as d:
        with profile(logdir=d, run="verify") as prof:
            step_fn(model, batch)
        graph = prof.graphs[-1]
    return (list(graph.analyses.get("compile_suggestions") or []), list(graph.analyses.get("hazards") or []),
            graph)


#: probe classes of ops that become generated kernels (by name), each with its own measured speed ratio
PROBE_CLASSES = (("batch_norm", "batch_norm"), ("layer_norm", "layer_norm"), ("softmax", "softmax"),
                 ("dropout", "dropout"), ("bernoulli", "dropout"), ("gelu", "gelu"))


def probe_class(op: str) -> str:
    """The probe whose generated-vs-eager speed stands for ``op`` (``pointwise`` when none names it)."""
    return next((c for key, c in PROBE_CLASSES if key in op), "pointwise")


def region_work(graph: Any, modules: Sequence[str]) -> dict[str, Any]:
    """What compiling ``modules`` changes in the recorded step, by the fusion prediction for the step's
    device: ``ops``, the eager ops of the region's forward and backward (each pays eager's dispatch and
    autograd bookkeeping, which compiled code skips); ``kernels``, the predicted kernel calls of the
    compiled code (generated and extern, each a call from Inductor's wrapper); ``generated_ns``, their
    recorded eager time in ops that become generated kernels, per probe class (Inductor's loops replace
    ATen's kernels there; externs such as matmuls run the same kernel either way)."""
    from gprof.analyses.fusion import predict
    from gprof.analyses.fusion_rules import FREE, role

    def inside(m: str | None) -> bool:
        return any(not r or m == r or (m or "").startswith(r + ".") for r in modules)

    by = {n.idx: n for n in graph.nodes}
    kernels = [k for p in ("forward", "backward") for k in predict(graph)[p] if any(inside(by[i].module) for i in k.nodes)]
    generated: dict[str, int] = {}
    for k in kernels:
        for i in k.nodes if k.generated else ():
            if inside(by[i].module):
                c = probe_class(by[i].op_short)
                generated[c] = generated.get(c, 0) + by[i].dur_ns
    ops = sum(1 for n in graph.nodes if n.phase in ("forward", "backward") and inside(n.module) and role(n) != FREE)
    return {"ops": ops, "kernels": len(kernels), "generated_ns": generated}


def _normalise(suggestions: Sequence[Any]) -> list[dict[str, Any]]:
    """Accept stored suggestion dicts or plain module names (``"encoder.layers.0"``)."""
    from gprof.analyses.regions import accessor

    out = []
    for s in suggestions:
        if isinstance(s, str):
            out.append({"module": s, "modules": [s], "snippet": f"{accessor(s)}.compile()", "est_time_saved_ns": None})
        else:
            out.append({**s, "modules": list(s.get("modules") or [s["module"]])})
    return out


_per_call: dict[str, int] = {}


def compiled_call_ns(cuda: bool = False, repeats: int = 30) -> int:
    """What one call of a compiled region costs beyond its kernels, on this device: Dynamo's guards,
    the compiled wrapper and AOTAutograd's forward and backward functions, measured once per process as
    the median step-time difference of a compiled and an eager ``Linear(8, 8)`` + ReLU (whose kernels
    cost next to nothing either way). A suggestion whose estimated saving is below its calls times this
    cost will not pay on this device."""
    device = "cuda" if cuda else "cpu"
    if device not in _per_call:
        torch.manual_seed(0)
        eager = nn.Sequential(nn.Linear(8, 8), nn.ReLU()).to(device)
        compiled = torch.compile(nn.Sequential(nn.Linear(8, 8), nn.ReLU()).to(device))
        x = torch.randn(4, 8, device=device)
        timer = _Timer(eager)
        diffs = []
        for i in range(repeats + 2):
            e = timer(lambda: eager(x).sum().backward())
            c = timer(lambda: compiled(x).sum().backward())
            if i >= 2:
                diffs.append(c - e)
        _per_call[device] = max(0, int(statistics.median(diffs)))
    return _per_call[device]


_costs: dict[str, dict[str, Any]] = {}


def _probes(device: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """One op per probe class on a 16x64x32x32 tensor (1 Mi elements); other
    pointwise ops are probed by ``relu``, the transcendental ``gelu`` on its own."""
    from torch.nn import functional as F

    w, b = torch.ones(64, device=device), torch.zeros(64, device=device)
    return {"pointwise": lambda a: torch.relu(a), "gelu": lambda a: F.gelu(a), "softmax": lambda a: torch.softmax(a, -1),
            "layer_norm": lambda a: F.layer_norm(a, (32,)), "dropout": lambda a: F.dropout(a, 0.1, True),
            "batch_norm": lambda a: F.batch_norm(a, None, None, w, b, training=True)}


def eager_costs(cuda: bool = False, repeats: int = 15) -> dict[str, Any]:
    """Costs of eager against compiled code on this device, measured once per process (each the fastest
    of ``repeats`` runs, as other work on the machine only adds time):

    - ``op_ns``: one eager op beyond its kernel (dispatch and autograd bookkeeping: a chain of 32 ``mul``s
      on a 32-element tensor, forward and backward, per op), which compiled code does not pay;
    - ``kernel_ns``: one kernel call in compiled code (the wrapper's call and buffer allocation: the
      compiled ``relu`` + ``mm`` chain of 8 links less that of 1, per kernel, on 4x8 tensors);
    - ``ratio``: per probe class, the time of Inductor's generated loop over ATen's kernel for one op on
      1 Mi elements (``_probes``; without autograd, so that it measures the loops: a standalone compiled
      training graph of one op adds wrapper and saved-mask costs that a model's fused kernels do not
      pay per op): on a CPU the generated loops can be slower than ATen's vectorised kernels, which a
      fusion saving must first make up."""
    device = "cuda" if cuda else "cpu"
    if device not in _costs:
        timer = _Timer(nn.Linear(1, 1).to(device))

        def best(fn: Callable[[], Any]) -> float:  # the fastest run: others were interrupted by other work
            fn()
            return min(timer(fn) for _ in range(repeats))

        w = torch.randn(4, 8, device=device, requires_grad=True)

        def chain() -> None:
            y = w
            for _ in range(32):
                y = y * 1.0001
            y.sum().backward()

        op_ns = best(chain) / (2 * 32 + 2)
        m = torch.randn(8, 8, device=device)

        def links(n: int) -> Callable[[torch.Tensor], torch.Tensor]:
            def f(a: torch.Tensor) -> torch.Tensor:
                for _ in range(n):
                    a = torch.mm(a.relu(), m)
                return a
            return f

        x = torch.randn(4, 8, device=device)
        long, short = torch.compile(links(8)), torch.compile(links(1))
        kernel_ns = max(0.0, (best(lambda: long(x)) - best(lambda: short(x))) / 14)
        ratio = {}
        big = torch.randn(16, 64, 32, 32, device=device)
        with torch.no_grad():  # the loops themselves: the wrapper's costs are kernel_ns and compiled_call_ns
            for name, f in _probes(device).items():
                c = torch.compile(f)
                eager = best(partial(f, big))
                ratio[name] = best(partial(c, big)) / eager if eager else 1.0
        _costs[device] = {"op_ns": op_ns, "kernel_ns": kernel_ns, "ratio": ratio}
    return _costs[device]


def predicted_saving(est_ns: int, calls: int, work: dict[str, Any] | None, call_ns: int,
                     costs: dict[str, Any]) -> int:
    """A region's predicted saving per step: the fusion estimate (launches and intermediate bytes
    fused away), plus the eager per-op cost its ops no longer pay, less the compiled code's cost per
    kernel call and per region call, and less the extra time of generated loops over the eager kernels
    they replace (their recorded time, less the per-op cost, times the probe class's ratio - 1).
    Without ``work`` (suggestions given by name, no recorded step) only the estimate less the calls."""
    saving = est_ns - calls * call_ns
    if work is not None:
        total = sum(work["generated_ns"].values())
        overhead = work["ops"] * costs["op_ns"]
        saving += overhead - work["kernels"] * costs["kernel_ns"]
        for c, ns in work["generated_ns"].items():  # the per-op share of each class's time is dispatch
            kernel_time = max(0.0, ns - overhead * ns / total) if total else 0.0
            saving -= kernel_time * (costs["ratio"].get(c, 1.0) - 1)
    return round(saving)


class _Timer:
    def __init__(self, model: nn.Module) -> None:
        self.cuda = any(p.is_cuda for p in model.parameters())

    def __call__(self, fn: Callable[[], Any]) -> int:
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter_ns()
        fn()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter_ns() - t0


def verify(model: nn.Module, step_fn: Callable[[nn.Module, Any], Any], batch: Any,
           suggestions: Sequence[Any] | None = None, *, hazards: Sequence[dict] | None = None,
           repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """Compile the suggested regions of ``model`` and report breaks, kernels and eager-vs-compiled
    step time. ``suggestions``: the step's ``compile_suggestions`` (or module names); when None, one
    step is profiled to get them (and the hazards)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    graph = None
    if suggestions is None:
        suggestions, found, graph = _profile_suggestions(model, step_fn, batch)
        hazards = found if hazards is None else hazards
    regions = _normalise(suggestions)
    for r in regions:
        for fqn in r["modules"]:
            try:
                model.get_submodule(fqn)
            except AttributeError as e:
                raise ValueError(f"suggested module {fqn!r} is not in this model; was the run recorded with "
                                 f"another model? (modules: {', '.join(n for n, _ in model.named_modules() if n)[:300]})") from e
    timer = _Timer(model)
    step = lambda: step_fn(model, batch)  # noqa: E731
    calls: dict[str, int] = {}
    inputs = _record_inputs(model, ["", *[m for r in regions for m in r["modules"]]], step, calls)
    report: dict[str, Any] = {"regions": [], "whole_model": None}
    if "" in inputs:
        args, kwargs = inputs[""]
        whole = _explain(model, args, kwargs)
        if hazards is not None and "break_reasons" in whole:
            keys = {_source_key(h.get("source")) for h in hazards}
            for br in whole["break_reasons"]:
                br["in_hazards"] = _source_key(br["source"]) in keys
            # only a claim about breaks that were found and itemised
            whole["all_breaks_in_hazards"] = (None if "never_compiled" in whole or whole.get("unlisted_breaks")
                                              else all(br["in_hazards"] for br in whole["break_reasons"]))
        report["whole_model"] = whole
    if not regions:
        report.update(eager_ns=None, compiled_ns=None, speedup=None, repeats=0, device="cuda" if timer.cuda else "cpu",
                      verdict="nothing to compile: no region was suggested (see the hazards)")
        return report
    compiled: dict[str, Callable[..., Any] | None] = {}
    torch._dynamo.reset()
    for r in regions:
        first = r["modules"][0]
        r_out = {k: r.get(k) for k in ("module", "modules", "snippet", "est_time_saved_ns")}
        r_out["calls"] = sum(calls.get(m, 0) for m in r["modules"])
        if first in inputs:
            r_out.update({k: v for k, v in _explain(model.get_submodule(first), *inputs[first]).items()})
        else:
            r_out["error"] = "the module did not run during the step"
        report["regions"].append(r_out)
    torch._dynamo.reset()
    # user classes compile in place (state_dict keys kept); PyTorch's own classes stay eager in place
    # before torch 2.14 (and recompile under module hooks from 2.14), so they are swapped for
    # torch.compile(module) in their parent, as the snippet says
    swapped: dict[str, tuple[nn.Module, Callable[..., Any]]] = {}  # (eager module, torch.compile of it)
    for r in regions:
        for fqn in r["modules"]:
            sub = model.get_submodule(fqn)
            if type(sub).__module__.startswith("torch.") and fqn:
                swapped[fqn] = (sub, torch.compile(sub))
                continue
            sub.compile()
            compiled[fqn] = sub._compiled_call_impl
            sub._compiled_call_impl = None
    from torch._inductor.utils import run_and_get_code

    def use(fqns: Sequence[str]) -> None:
        for fqn, impl in compiled.items():
            model.get_submodule(fqn)._compiled_call_impl = impl if fqn in fqns else None
        for fqn, (eager, opt) in swapped.items():
            parent, _, name = fqn.rpartition(".")
            setattr(model.get_submodule(parent), name, opt if fqn in fqns else eager)

    try:
        for r, r_out in zip(regions, report["regions"]):
            use(r["modules"])
            _, codes = run_and_get_code(step)
            r_out["kernels"] = count_kernels(codes)
        configs = [[]] + [r["modules"] for r in regions] + ([list(compiled)] if len(regions) > 1 else [])
        times: list[list[int]] = [[] for _ in configs]
        for i in range(warmup + repeats):
            for c, fqns in enumerate(configs):
                use(fqns)
                t = timer(step)
                if i >= warmup:
                    times[c].append(t)
    finally:
        use([])
    med = [int(statistics.median(t)) for t in times]
    per_call = compiled_call_ns(timer.cuda)
    costs = eager_costs(timer.cuda)
    report["compiled_call_ns"] = per_call
    report["eager_costs"] = costs
    for c, r_out in enumerate(report["regions"], 1):
        r_out["eager_ns"], r_out["compiled_ns"] = med[0], med[c]
        r_out["speedup"] = round(med[0] / med[c], 3) if med[c] else None
        r_out["measured_saving_ns"] = med[0] - med[c]
        # half the interquartile range of the paired (same-iteration) differences: a measured saving
        # smaller than this is within this machine's noise and says nothing about the sign
        diffs = sorted(e - x for e, x in zip(times[0], times[c]))
        r_out["measured_noise_ns"] = (diffs[(3 * len(diffs)) // 4] - diffs[len(diffs) // 4]) // 2
        if r_out.get("est_time_saved_ns") is not None:
            r_out["work"] = region_work(graph, r_out["modules"]) if graph is not None else None
            r_out["predicted_saving_ns"] = predicted_saving(r_out["est_time_saved_ns"], r_out["calls"],
                                                            r_out["work"], per_call, costs)
            r_out["pays"] = r_out["predicted_saving_ns"] > 0
    report["eager_ns"], report["compiled_ns"] = med[0], med[-1]
    report["speedup"] = round(med[0] / med[-1], 3) if med[-1] else None
    report["repeats"] = repeats
    report["device"] = "cuda" if timer.cuda else "cpu"
    report["verdict"] = verdict(report["speedup"])
    return report


def verdict(speedup: float | None) -> str:
    if speedup is None:
        return "not measured"
    if speedup < 0.97:
        return f"compiled is slower on this machine ({speedup:.2f}x of eager speed)"
    if speedup <= 1.03:
        return f"no measurable difference ({speedup:.2f}x)"
    return f"compiled is faster ({speedup:.2f}x)"


def format_report(report: dict[str, Any]) -> str:
    lines = []
    w = report.get("whole_model")
    if w and "graph_breaks" in w:
        lines.extend(_explain_lines(w, "whole model: "))
        for br in w["break_reasons"]:
            mark = {True: "in hazards", False: "NOT in hazards", None: ""}[br.get("in_hazards")]
            lines.append(f"   break at {br['source']}: {br['reason'][:100]}  [{mark}]")
    elif w:
        lines.append(f"whole model: explain failed: {w['error']}")
    for r in report["regions"]:
        lines.append(f"region {r['module'] or '(root)'}: {r['snippet'].splitlines()[0]}")
        if "error" in r:
            lines.append(f"   {r['error']}")
            continue
        k = r.get("kernels", {})
        lines.extend(_explain_lines(r, "   "))
        lines.append(f"   Inductor kernels: {k.get('generated', '?')} generated + {k.get('extern', '?')} extern")
        for br in r["break_reasons"]:
            lines.append(f"   break at {br['source']}: {br['reason'][:100]}")
        lines.append(f"   step: eager {fmt_ns(r['eager_ns'])}, with this region compiled {fmt_ns(r['compiled_ns'])} "
                     f"({r['speedup']}x)")
        if r.get("predicted_saving_ns") is not None:
            pay = "pays" if r["pays"] else "will not pay on this device"
            w, ec = r.get("work"), report["eager_costs"]
            extra = (f" + {w['ops']} eager ops x {fmt_ns(round(ec['op_ns']))} - {w['kernels']} kernel calls x "
                     f"{fmt_ns(round(ec['kernel_ns']))} - slower generated loops") if w else ""
            lines.append(f"   saving per step: predicted {fmt_ns(r['predicted_saving_ns'])} (fusion "
                         f"{fmt_ns(r['est_time_saved_ns'])}{extra} - {r['calls']} call(s) x "
                         f"{fmt_ns(report['compiled_call_ns'])} compiled-call cost: {pay}), "
                         f"measured {fmt_ns(r['measured_saving_ns'])}")
    if report["eager_ns"] is None:
        lines.append(report["verdict"])
    else:
        lines.append(f"all regions: eager {fmt_ns(report['eager_ns'])}, compiled {fmt_ns(report['compiled_ns'])} "
                     f"(median of {report['repeats']} interleaved steps on {report['device']}): {report['verdict']}")
    return "\n".join(lines)
