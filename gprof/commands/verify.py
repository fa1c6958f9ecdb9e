"""torch-gprof verify SCRIPT [--run RUN] [--repeats N] [--json]

SCRIPT defines ``make() -> (model, optimizer, batches)`` and ``step(model, optimizer, batch)``, as
the examples do; verify takes the suggestions from a recorded run (``--run``) or profiles one step,
then compiles each suggested region and reports breaks, kernels and eager-vs-compiled time.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT_CONTRACT = ("define make() -> (model, optimizer, batches) and step(model, optimizer, batch), "
                   "as examples/mlp.py does")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("script", help="a Python file with make() and step() (e.g. examples/dynamic.py)")
    p.add_argument("--run", help="take the suggestions from this recorded run (default: profile one step now)")
    p.add_argument("--step", type=int, help="with --run: the step whose suggestions to use (default: the last)")
    p.add_argument("--module", action="append", default=[],
                   help="verify this module instead of the suggestions (repeatable), e.g. --module encoder.layers.0")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (default: 5)")
    p.add_argument("--json", action="store_true", help="JSON output")


def load_script(path: str) -> ModuleType:
    """Import SCRIPT as a module without running its ``__main__`` block."""
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"torch-gprof verify: no such file: {path}")
    sys.path.insert(0, str(file.resolve().parent))
    sys.path.insert(0, str(Path.cwd()))
    spec = importlib.util.spec_from_file_location(f"gprof_verify_{file.stem}", file)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not callable(getattr(mod, "make", None)) or not callable(getattr(mod, "step", None)):
        raise SystemExit(f"torch-gprof verify: {path} must {SCRIPT_CONTRACT}")
    return mod


def _stored(run_path: str, step: int | None) -> tuple[list, list]:
    from gprof.store import open_run

    run = open_run(run_path)
    with run.open(step=step) as r:
        analyses = r.analyses()
    sugg = analyses.get("compile_suggestions")
    if not isinstance(sugg, list):
        raise SystemExit(f"torch-gprof verify: {run_path} has no compile suggestions stored; "
                         "record it with analyses on (the default) or drop --run to profile a step now")
    hz = analyses.get("hazards")
    return sugg, hz if isinstance(hz, list) else []


def run(args: argparse.Namespace) -> int:
    import torch

    from gprof.verify import format_report, verify

    if args.repeats < 1:
        print("torch-gprof verify: --repeats must be at least 1", file=sys.stderr)
        return 2
    mod = load_script(args.script)
    torch.manual_seed(0)
    model, opt, batches = mod.make()
    if not batches:
        print(f"torch-gprof verify: make() in {args.script} returned no batches", file=sys.stderr)
        return 2
    suggestions: Sequence[Any] | None = args.module or None
    hazards: Sequence[dict[str, Any]] | None = None
    if args.run and not args.module:
        suggestions, hazards = _stored(args.run, args.step)
    report = verify(model, lambda m, b: mod.step(m, opt, b), batches[0], suggestions, hazards=hazards,
                    repeats=args.repeats)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0
