"""torch-gprof tui RUN [--step N] [--rank R]: browse a recorded run in the terminal."""
from __future__ import annotations

import argparse
import sys

from gprof.analyses.gpu_specs import GPUS
from gprof.analyses.runner import TARGETS, check_target
from gprof.commands.report import gpu_arg
from gprof.store import StepReader, StoreError, open_run
from gprof.store.decode import integer
from gprof.store.queries import newest_readable


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--step", type=integer, help="step to open first (default: the last readable one)")
    p.add_argument("--rank", type=integer, help="rank to open first (default: the lowest)")
    p.add_argument("--target", choices=TARGETS,
                   help="predict fusion for this Inductor backend: cpu (C++) or cuda (Triton); the t key "
                        "cycles it (default: the prediction stored when the step was recorded)")
    p.add_argument("--gpu", type=gpu_arg, help=f"the GPU a cuda prediction is priced for (implies --target cuda): {', '.join(GPUS)}")


def run(args: argparse.Namespace) -> int:
    from gprof_tui.browse import BrowseApp

    try:
        target, gpu = check_target(args.target, args.gpu)
    except ValueError as bad:  # --target cpu --gpu H100
        raise StoreError(str(bad)) from None
    run_obj = open_run(args.run, args.run_name)
    # The first step is opened here, before the screen is: a missing step or rank, or a file that
    # cannot be read, is a clear error (StoreError, exit 2) instead of a traceback inside Textual.
    if args.step is None:
        first, skipped = newest_readable(run_obj, args.rank)
        for f, e in skipped:
            print(f"torch-gprof tui: skipped step {f.step} rank {f.rank}: {e}", file=sys.stderr)
    else:
        first = run_obj.file(args.step, args.rank)
        StepReader(first.path).close()
    BrowseApp(run_obj, first.step, first.rank, target, gpu).run()
    return 0
