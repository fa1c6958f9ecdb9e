"""torch-gprof attach TARGET [--rank R] [--token-file F]: attach the terminal UI to a running
debug server, e.g. rank 1 of a torchrun job that called gprof.debug(prof).

There is no ``--token``: a command line is readable by every local user (``/proc/<pid>/cmdline``),
and the token lets its holder run Python in the training process. A bare address takes its token
from ``--token-file`` or ``GPROF_DEBUG_TOKEN`` (docs/security.md)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gprof.debug.client import DebugClient, DebugConnectionError, resolve_target


def add_parser(p: argparse.ArgumentParser) -> None:
    p.allow_abbrev = False  # else a habitual ``--token T`` would be taken as ``--token-file T``
    p.add_argument("target", help="a debug address file (debug.rank<R>.json), a run directory or logdir "
                                  "(with --rank), or an address 127.0.0.1:PORT / unix:/path (with a token)")
    p.add_argument("--rank", type=int, default=0, help="which rank's server, for a run directory (default 0)")
    p.add_argument("--token-file", help="a file holding the token, for a bare address (or set GPROF_DEBUG_TOKEN)")


def run(args: argparse.Namespace) -> int:
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as e:
            print(f"torch-gprof attach: cannot read the token file: {e}", file=sys.stderr)
            return 2
    try:
        address, token = resolve_target(args.target, args.rank, token)
        client_probe = DebugClient(address, token)  # fail here, with a message, not inside the UI
    except DebugConnectionError as e:
        print(f"torch-gprof attach: {e}", file=sys.stderr)
        return 2
    from gprof_tui.debug import DebugApp

    def connect(on_event: Callable[[dict[str, Any]], None]) -> DebugClient:
        client_probe.on_event = on_event
        return client_probe

    DebugApp(connect, title=f"attached to {address}").run()
    return 0
