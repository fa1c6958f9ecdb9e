"""torch-gprof export RUN --format graphdef|perfetto [--step N] [--rank R] [-o PATH]"""
from __future__ import annotations

import argparse
import sys

from gprof.graph.model import PHASES
from gprof.store import open_run


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (e.g. runs/exp1), a step file, or a logdir holding one run")
    p.add_argument("--run-name", help="pick a run by name when RUN is a logdir with several runs")
    p.add_argument("--format", required=True, choices=("graphdef", "perfetto"),
                   help="graphdef: a tfevents file in the run directory for TensorBoard's Graphs tab; "
                        "perfetto: Chrome trace JSON for ui.perfetto.dev or chrome://tracing")
    p.add_argument("--step", type=int, help="which step (default: the last)")
    p.add_argument("--rank", type=int, help="which rank (default: the lowest)")
    p.add_argument("-o", "--output", help="perfetto: the JSON file to write (default: in the run directory); "
                                          "graphdef: the directory for the tfevents file (default: the run directory)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"graphdef only: comma list of phases to include (default: {','.join(PHASES)})")
    p.add_argument("--max-nodes", type=int, default=None, help="graphdef only: refuse larger graphs (default 200000)")


def run(args: argparse.Namespace) -> int:
    run = open_run(args.run, args.run_name)
    f = run.file(args.step, args.rank)
    with run.open(f.step, f.rank) as reader:
        if args.format == "perfetto":
            from gprof.export.perfetto import export_trace

            out = args.output or run.path / f"step{f.step}.rank{f.rank}.perfetto.json"
            path = export_trace(reader, out)
            print(f"wrote {path} ({reader.count():,} nodes); open it in https://ui.perfetto.dev or chrome://tracing")
            return 0
        from gprof.export.graphdef import DEFAULT_MAX_NODES, ExportTooLargeError, write_graph_events

        phases = tuple(p for p in args.phases.split(",") if p)
        unknown = set(phases) - set(PHASES)
        if unknown or not phases:
            print(f"torch-gprof export: --phases takes a comma list of {', '.join(PHASES)}; got {args.phases!r}",
                  file=sys.stderr)
            return 2
        try:
            path = write_graph_events(reader, args.output or run.path, phases, args.max_nodes or DEFAULT_MAX_NODES)
        except ExportTooLargeError as e:
            print(f"torch-gprof export: {e}", file=sys.stderr)
            return 2
        print(f"wrote {path}; run `tensorboard --logdir {run.path.parent}` and open the Graphs tab "
              f"(run {run.name}, tag step{f.step}) to see it coloured by compute time and memory")
        return 0
