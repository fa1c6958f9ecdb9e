"""GPU check, one prepared script for a lent CUDA machine: per-node device times (CUDA event pairs)
summed per op type against the Kineto kernel times of the same step, within 5%.

    python benchmarks/gpu_check.py [--layers 12 --width 768 --batch 8 --seq 1024] [--out DIR]

A GPT-2-small-sized training step (12 layers, width 768, vocab 50257, Adam) runs once under
torch.profiler (CPU+CUDA) while every op is timed with :class:`gprof.capture.device_timing.DeviceTimer`.
If the recorder is wired to the timer (its nodes carry ``device_ns``), the step is recorded with
``gprof.profile(with_kineto=True)`` and the nodes' own times are compared; otherwise a minimal
timing mode applies the timer exactly as the recorder would. Also prints the in-step cost of the
event pairs. Without CUDA it says so and exits with status 0.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

try:
    from benchmarks import _common as C
    from benchmarks import fusion_vs_inductor as F
except ImportError:  # run as `python benchmarks/gpu_check.py`
    import _common as C
    import fusion_vs_inductor as F

from examples._harness import step as train_step
from gprof.capture.device_timing import (
    CudaEvents,
    DeviceTimedMode,
    DeviceTimer,
    device_times_by_op,
    kineto_kernel_times,
    kineto_op_name,
)

TOLERANCE = 0.05
#: op types below this share of the step's kernel time are listed but not judged (a few us of
#: launch jitter is more than 5% of a 20 us op)
JUDGED_SHARE = 0.01


def _to_cuda(make_out: tuple) -> tuple:
    model, _, batches = make_out
    model = model.cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return model, opt, [tuple(t.cuda() for t in b) for b in batches]


def _kineto_step(model: Any, opt: Any, batch: Any, trace: Path, mode: Any) -> None:
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=False) as prof:
        with mode:
            train_step(model, opt, batch)
        torch.cuda.synchronize()
    prof.export_chrome_trace(str(trace))


def _gprof_step(model: Any, opt: Any, batch: Any, logdir: Path) -> tuple[dict[str, int], Path] | None:
    """Record with the real recorder; None when its nodes carry no device time (timer not wired)."""
    import gprof

    torch.cuda.synchronize()
    with gprof.profile(logdir=logdir, run="gpu", with_kineto=True, analyze=False) as prof:
        train_step(model, opt, batch)
    graph = gprof.load(logdir / "gpu")
    if not any(n.device_ns for n in graph.nodes):
        return None
    trace = prof.run_dir / graph.meta.extra["kineto_trace"]
    return device_times_by_op((n.op, n.device_ns) for n in graph.nodes), trace


def _in_step_cost(model: Any, opt: Any, batches: list, rounds: int) -> dict[str, float]:
    """Median step time plain, under a pass-through mode, and under the event-timing mode."""
    timer = DeviceTimer(CudaEvents())
    configs = {"plain": contextlib.nullcontext, "pass-through mode": C.PassThrough,
               "event pairs": lambda: DeviceTimedMode(timer)}
    samples = C.Samples()
    for r in range(rounds):
        for name, ctx in configs.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter_ns()
            with ctx():
                train_step(model, opt, batches[r % len(batches)])
            torch.cuda.synchronize()
            samples.add(name, "step", time.perf_counter_ns() - t0)
            timer.resolve()
    return {name: samples.med(name, "step") for name in configs}


def compare(ours: dict[str, int], kineto: dict[str, int]) -> bool:
    total_k = sum(v for k, v in kineto.items() if k != "<no op>")
    total_o = sum(ours.values())
    ok = True
    print(f"   {'op':<40} {'events ms':>10} {'kineto ms':>10} {'diff':>8}  share")
    for op in sorted(set(ours) | set(kineto), key=lambda k: -kineto.get(k, 0)):
        if op == "<no op>":
            continue
        o, k = ours.get(op, 0), kineto.get(op, 0)
        share = k / total_k if total_k else 0.0
        diff = (o - k) / k if k else float("inf") if o else 0.0
        judged = share >= JUDGED_SHARE
        bad = judged and abs(diff) > TOLERANCE
        ok &= not bad
        if judged or o > 0.01 * total_o:
            print(f"   {op[:40]:<40} {o / 1e6:10.3f} {k / 1e6:10.3f} {diff:+8.1%}  {share:5.1%}"
                  f"{'  <-- over 5%' if bad else '' if judged else '  (not judged: < 1% of the step)'}")
    total_diff = (total_o - total_k) / total_k if total_k else float("nan")
    ok &= abs(total_diff) <= TOLERANCE
    print(f"   total: events {total_o / 1e6:.3f} ms, kineto kernels {total_k / 1e6:.3f} ms ({total_diff:+.1%}); "
          f"kernels outside any op {kineto.get('<no op>', 0) / 1e6:.3f} ms")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds for the in-step cost (default 7)")
    p.add_argument("--models", nargs="*", default=["mlp", "cnn", "transformer", "gpt2"],
                   help="models for the --target cuda check (fusion_vs_inductor names; default mlp cnn transformer gpt2)")
    p.add_argument("--out", type=Path, help="also write the traces and a JSON summary here")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list each predicted/generated kernel pair under 0.8 similarity and every unmatched kernel")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
              "nothing to check. Run it on a machine with an NVIDIA GPU and a CUDA build of torch.")
        return 0
    warnings.simplefilter("ignore")
    print(C.header("gpu_check.py: per-node CUDA event times vs Kineto kernel times"))
    print(f"# device: {torch.cuda.get_device_name()}; model: {args.layers} layers, width {args.width}, "
          f"vocab {args.vocab}, batch {args.batch}x{args.seq}")
    model, opt, batches = _to_cuda(C.make_gpt(steps=2, batch=args.batch, seq=args.seq, width=args.width,
                                              layers=args.layers, vocab=args.vocab, heads=args.heads))
    for b in batches * 2:  # warm-up: cuBLAS handles, allocator, optimizer state
        train_step(model, opt, b)
    torch.cuda.synchronize()
    workdir = args.out or Path(tempfile.mkdtemp(prefix="gprof-gpu-"))
    workdir.mkdir(parents=True, exist_ok=True)

    with C.quiet_native_stderr():
        recorded = _gprof_step(model, opt, batches[0], workdir / "runs")
    if recorded is not None:
        source = "gprof.profile nodes' device_ns (recorder wired to DeviceTimer)"
        ours, trace = recorded
    else:
        source = "DeviceTimer in a minimal timing mode (the recorder is not wired to it yet)"
        timer = DeviceTimer(CudaEvents())
        mode = DeviceTimedMode(timer)
        trace = workdir / "events_step.pt.trace.json"
        with C.quiet_native_stderr():
            _kineto_step(model, opt, batches[0], trace, mode)
        times = timer.resolve()
        ours = device_times_by_op((op, times.get(i)) for i, op in enumerate(mode.ops))
    kineto = kineto_kernel_times(trace, op_names={kineto_op_name(op) for op in ours} or None)
    print(f"\n== per op type ({source})")
    ok = compare(ours, kineto)

    costs = _in_step_cost(model, opt, batches, args.rounds)
    plain = costs["plain"]
    print(f"\n== in-step cost of timing (median of {args.rounds} interleaved steps, synchronized)")
    for name, ns in costs.items():
        print(f"   {name:<20} {C.fmt_ms(ns)}  {ns / plain:6.3f}x")
    print(f"\nverdict: per-op-type device times {'within' if ok else 'NOT within'} 5% of Kineto kernel times")
    fusion_ok = check_fusion(args.models, args.verbose)
    if args.out:
        (args.out / "gpu_check.json").write_text(json.dumps(
            {"source": source, "ours_ns": ours, "kineto_ns": kineto, "in_step_ns": costs, "ok": ok}, indent=1))
    return 0 if ok and fusion_ok else 1


def check_fusion(names: list[str], verbose: bool = False) -> bool:
    """``--target cuda`` prediction (recorded on the CPU, re-targeted to this GPU by name) against the
    Triton launches of the same step compiled on this GPU (``benchmarks/fusion_vs_inductor.py``, which
    schedules for the device without stand-ins when CUDA is there): kernel counts per phase within 10%
    and mean op-set Jaccard >= 0.8."""
    gpu = torch.cuda.get_device_name()
    print(f"\n== --target cuda prediction vs real Triton launches ({gpu}; prediction from a CPU-recorded step)")
    print(f"   {'model':<12} {'phase':<9} {'predicted':>9} {'triton':>7} {'within10%':>9} {'jaccard':>8}")
    good = True
    for name in names:
        t0 = time.perf_counter()
        pred, _, _ = F.predicted(name, "cuda", gpu)
        act = F.actual(name, "cuda")
        for phase in ("forward", "backward"):
            p, a = pred[phase], [k.ops for k in act[phase]]
            sims = [F.jaccard(p[i], a[j]) for i, j in F.align(p, a)]
            within = abs(len(p) - len(a)) <= 0.1 * len(a)
            jac = sum(sims) / len(sims) if sims else 0.0
            good &= within and jac >= 0.8
            print(f"   {name:<12} {phase:<9} {len(p):>9} {len(a):>7} {'yes' if within else 'NO':>9} {jac:>8.2f}")
            if verbose:  # each kernel pair below 0.8 and each kernel left unmatched, for the rules' next round
                pairs = F.align(p, a)
                for i, j in pairs:
                    if F.jaccard(p[i], a[j]) < 0.8:
                        print(f"      {F.jaccard(p[i], a[j]):.2f} predicted {F.fmt(p[i])}  {act[phase][j].name} {F.fmt(a[j])}")
                for j in sorted(set(range(len(a))) - {j for _, j in pairs}):
                    print(f"      unmatched {act[phase][j].name} {F.fmt(a[j])}")
                for i in sorted(set(range(len(p))) - {i for i, _ in pairs}):
                    print(f"      unmatched predicted {F.fmt(p[i])}")
        print(f"   {name:<12} ({time.perf_counter() - t0:.0f} s)")
    print(f"verdict: --target cuda prediction {'within' if good else 'NOT within'} the targets on this GPU")
    return good


if __name__ == "__main__":
    sys.exit(main())
