"""Predicted against measured saving of each compile suggestion (``gprof.verify``), per model.

For each example and held-out model: one eager step is profiled, its suggestions are compiled one
region at a time and timed against eager (``gprof.verify``, median of interleaved steps). The predicted
saving is the fusion estimate less the compiled-call cost times the region's calls per step
(``gprof.verify.compiled_call_ns``); the table prints it beside the measured one, whether the sign
agrees (pays / does not pay), and the median relative error over the regions.

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
from gprof.verify import compiled_call_ns, verify  # noqa: E402


def main(names: list[str], repeats: int) -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}; compiled-call cost on this CPU: {compiled_call_ns() / 1e3:.0f} us per call")
    print(f"{'model':<12} {'region':<28} {'calls':>5} {'fusion est':>10} {'predicted':>10} {'measured':>10} "
          f"{'sign':>5} {'rel.err':>7}")
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
            ok = (pred > 0) == (meas > 0)
            err = abs(pred - meas) / max(abs(meas), 1)
            errors.append(err)
            signs.append(ok)
            print(f"{name:<12} {(r['module'] or '(root)')[:28]:<28} {r['calls']:>5} "
                  f"{r['est_time_saved_ns'] / 1e3:>8.0f}us {pred / 1e3:>8.0f}us {meas / 1e3:>8.0f}us "
                  f"{'yes' if ok else 'NO':>5} {err:>7.2f}")
    if errors:
        print(f"right sign on {sum(signs)}/{len(signs)} regions; median relative error {statistics.median(errors):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=EXAMPLES + HELD_OUT)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    main(args.models, args.repeats)
