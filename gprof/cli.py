"""``torch-gprof`` (also ``python -m gprof``). Each subcommand lives in ``gprof/commands/<name>.py``
with ``add_parser(subparsers)`` and ``run(args) -> int``; they are imported only when used, so
``torch-gprof --help`` stays fast and a broken optional view never breaks the others."""
from __future__ import annotations

import argparse
import importlib
import sys

from gprof.store import StoreError

#: (command, module, one-line help)
COMMANDS = [
    ("report", "gprof.commands.report", "print a run's report (text or --json)"),
    ("tui", "gprof.commands.tui", "browse a recorded run in the terminal UI"),
    ("debug", "gprof.commands.debug", "run a script under the recorder and debug it live in the terminal UI"),
    ("attach", "gprof.commands.attach", "attach the terminal UI to a running debug server (e.g. one rank)"),
    ("verify", "gprof.commands.verify", "compile the suggested regions and measure breaks, kernels and speed"),
    ("export", "gprof.commands.export", "export a step as a Perfetto trace or TensorBoard GraphDef"),
]

EPILOG = """examples:
  torch-gprof report runs/exp1            text report of the last step
  torch-gprof report runs/exp1 --json     the same as JSON (docs/report-schema.md)
  torch-gprof tui runs/exp1               browse the run in the terminal
  torch-gprof debug train.py --break nan  pause at the first op that makes a NaN
"""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the command it names has its module imported (and its options
    added), so ``torch-gprof report`` does not pay for, or import torch through, ``debug`` or ``verify``.
    ``argv`` None builds every command's parser."""
    p = argparse.ArgumentParser(
        prog="torch-gprof", description="Graph-level profiler and debugger for PyTorch training steps.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from gprof import __version__

    p.add_argument("--version", action="version", version=f"torch-gprof {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, module, help_text in COMMANDS:
        if chosen is not None and name != chosen:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue  # command not built yet
            raise
        sp = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_parser(sp)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except StoreError as e:
        print(f"torch-gprof {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
