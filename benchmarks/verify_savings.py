"""Predicted against measured saving of each compile suggestion (``gprof.verify``), per model.

For each example and held-out model: one eager step is profiled, its suggestions are compiled one
region at a time and timed against eager (``gprof.verify``, median of interleaved steps). The predicted
saving (``gprof.verify.predicted_saving``) is the fusion estimate, plus the eager per-op cost (dispatch and
autograd, measured on this machine: ``eager_costs``) times the region's eager ops, less the compiled code's
cost per kernel call times its predicted kernels, the compiled-call cost times its calls per step
(``compiled_call_ns``) and the extra time of Inductor's generated loops over the eager kernels they replace
(the measured speed ratio of a probe op of the same class, without autograd); the table prints it
beside the measured one and its noise (half the interquartile range of the paired eager-minus-compiled
step differences), whether the sign agrees (pays / does not pay; ``noise`` when the measured saving is
within its noise, where a sign means nothing), and the median relative error over the regions.

    python benchmarks/verify_savings.py [--repeats N] [mlp cnn transformer dynamic gpt2 tiny]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fusion_vs_inductor import EXAMPLES, HELD_OUT, load  # noqa: E402
from gprof.verify import compiled_call_ns, eager_costs, verify  # noqa: E402


def main(names: list[str], repeats: int) -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    costs = eager_costs()
    print(f"torch {torch.__version__}; on this CPU: compiled-call cost {compiled_call_ns() / 1e3:.0f} us per call, "
          f"eager per-op cost {costs['op_ns'] / 1e3:.1f} us, compiled kernel call {costs['kernel_ns'] / 1e3:.1f} us, "
          f"generated/eager time " + ", ".join(f"{c} {r:.2f}x" for c, r in costs["ratio"].items()))
    print(f"{'model':<12} {'region':<20} {'calls':>5} {'ops':>5} {'kernels':>7} {'gen.eager':>10} {'fusion est':>10} "
          f"{'predicted':>10} {'measured':>10} {'+-noise':>8} {'sign':>5} {'rel.err':>7}")
    errors, signs = [], []
    for name in names:
        make, step = load(name)
        model, opt, batches = make()
        report = verify(model, lambda m, b, opt=opt, step=step: step(m, opt, b), batches[0], repeats=repeats)
        if not report["regions"]:
            print(f"{name:<12} (no suggestion)")
        for r in report["regions"]:
            pred, meas = r.get("predicted_saving_ns"), r.get("measured_saving_ns")
            if pred is None or meas is None:
                continue
            noise = r.get("measured_noise_ns", 0)
            ok = (pred > 0) == (meas > 0)
            err = abs(pred - meas) / max(abs(meas), 1)
            errors.append(err)
            if abs(meas) > noise:
                signs.append(ok)
            w = r.get("work") or {"ops": 0, "kernels": 0, "generated_ns": {}}
            print(f"{name:<12} {(r['module'] or '(root)')[:20]:<20} {r['calls']:>5} {w['ops']:>5} {w['kernels']:>7} "
                  f"{sum(w['generated_ns'].values()) / 1e3:>8.0f}us {r['est_time_saved_ns'] / 1e3:>8.0f}us {pred / 1e3:>8.0f}us "
                  f"{meas / 1e3:>8.0f}us {noise / 1e3:>6.0f}us {('yes' if ok else 'NO') if abs(meas) > noise else 'noise':>5} "
                  f"{err:>7.2f}")
    if errors:
        print(f"right sign on {sum(signs)}/{len(signs)} regions measured outside the noise ({len(errors)} regions); "
              f"median relative error {statistics.median(errors):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=EXAMPLES + HELD_OUT)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    main(args.models, args.repeats)
