"""Time to answer: what recording 5 steps, analysing them and writing them adds to 5 plain steps,
against torch.profiler (shapes, memory, stack) plus ``export_chrome_trace`` on the same 5 steps.

    python benchmarks/time_to_answer.py [--models transformer,gpt2] [--rounds N]

Each round runs, interleaved: 5 plain steps; 5 steps under ``gprof.profile`` (enter to exit, so
every step is built, analysed and committed to the logdir); 5 steps under torch.profiler, then its
Chrome trace export. Added time = median wall of a configuration - median wall of plain.
Target (issue 3): gprof's added time <= 0.5x torch.profiler's.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

try:
    from benchmarks import _common as C
except ImportError:  # run as `python benchmarks/time_to_answer.py`
    import _common as C

import gprof

MODELS = C.MODELS
STEPS = 5


def _steps(model: Any, opt: Any, batches: list, after_step: Any = None, split: list[int] | None = None) -> None:
    """Run the steps; with ``split`` ([step ns, after-step ns]) also add up where the time went."""
    for i in range(STEPS):
        t0 = time.perf_counter_ns()
        C.train_step(model, opt, batches[i % len(batches)])
        t1 = time.perf_counter_ns()
        if after_step is not None:
            after_step()
        if split is not None:
            split[0] += t1 - t0
            split[1] += time.perf_counter_ns() - t1


def bench_model(name: str, rounds: int, workdir: Path) -> dict[str, float]:
    model, opt, batches = MODELS[name]()
    for b in batches[:2]:  # steady state: the optimizer state exists
        C.train_step(model, opt, b)
    n_ops = C.ops_per_step(model, opt, batches[0], C.train_step)
    counter = iter(range(10**9))

    split = [0, 0]  # in the training steps, after them (prof.step()): summed over one run

    def plain() -> None:
        _steps(model, opt, batches, split=split)

    def ours() -> None:
        with gprof.profile(logdir=workdir / "gprof", run=f"r{next(counter)}") as prof:
            _steps(model, opt, batches, prof.step, split)

    def theirs() -> None:
        with C.quiet_native_stderr():
            with torch.profiler.profile(record_shapes=True, profile_memory=True, with_stack=True) as prof:
                _steps(model, opt, batches, prof.step)
            prof.export_chrome_trace(str(workdir / f"trace{next(counter)}.pt.trace.json"))

    configs = {"plain": plain, "gprof.profile (record+analyse+write)": ours,
               "torch.profiler + export_chrome_trace": theirs}
    for fn in configs.values():  # untimed first use: lazy imports, caches
        fn()
    samples = C.Samples()
    for r in range(rounds):
        for cname, fn in (configs.items() if r % 2 == 0 else reversed(configs.items())):
            split[:] = [0, 0]
            ns, _ = C.timed(fn)
            samples.add(cname, "wall", ns)
            if fn in (ours, plain):
                samples.add(cname, "steps", split[0])
                samples.add(cname, "after steps", split[1])
    plain_ns = samples.med("plain", "wall")
    ours_added = samples.med("gprof.profile (record+analyse+write)", "wall") - plain_ns
    tp_added = samples.med("torch.profiler + export_chrome_trace", "wall") - plain_ns
    trace_mb = max((p.stat().st_size for p in workdir.glob("trace*.json")), default=0) / 2**20
    step_kb = max((p.stat().st_size for p in (workdir / "gprof").rglob("*.sqlite")), default=0) / 1024
    print(f"\n== {name}: {n_ops} ops/step, {STEPS} steps per run, {rounds} interleaved rounds (medians)")
    for cname in configs:
        med = samples.med(cname, "wall")
        print(f"   {cname:<40} {C.fmt_ms(med)}   added {C.fmt_ms(med - plain_ns)}")
    ours_name = "gprof.profile (record+analyse+write)"
    in_step = samples.med(ours_name, "steps") - samples.med("plain", "steps")
    boundary = samples.med(ours_name, "after steps")
    print(f"   gprof's added time, split: in the steps {in_step / 1e6:.1f} ms, in prof.step() {boundary / 1e6:.1f} ms "
          f"(build, analyse, write), entering and leaving the block {(ours_added - in_step - boundary) / 1e6:.1f} ms")
    ratio = ours_added / tp_added if tp_added > 0 else float("nan")
    print(f"   added by gprof: {ours_added / 1e6:.1f} ms; added by torch.profiler+export: {tp_added / 1e6:.1f} ms; "
          f"ratio {ratio:.3f} (target <= 0.5): {'MET' if ratio <= 0.5 else 'NOT MET'}")
    print(f"   output size: Chrome trace {trace_mb:.1f} MiB per 5 steps; gprof step file {step_kb:.0f} KiB per step")
    return {"ours_added_ns": ours_added, "tp_added_ns": tp_added, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="transformer,gpt2", help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = p.parse_args(argv)
    names = C.model_names(p, args.models)
    C.single_thread()
    warnings.simplefilter("ignore")
    print(C.header("time_to_answer.py: wall time added to 5 steps until the answer is on disk"))
    with tempfile.TemporaryDirectory(prefix="gprof-tta-") as d:
        for name in names:
            bench_model(name, args.rounds, Path(d) / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
