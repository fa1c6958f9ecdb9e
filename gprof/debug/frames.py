"""The user's frames at a pause: what the stack pane lists, what the source pane shows, and where
``x`` evaluates (pudb's variables view, as an expression). torch's and gprof's own frames are
left out, so the innermost frame is the line of user code that issued the op."""
from __future__ import annotations

import linecache
import os
import sys
import threading
from types import FrameType
from typing import Any

import torch

MAX_FRAMES = 12
#: source lines shown above and below the current one
CONTEXT = 8


def internal_dirs() -> tuple[str, ...]:
    import gprof

    return (os.path.dirname(torch.__file__), os.path.dirname(gprof.__file__), os.path.dirname(threading.__file__))


def user_frames(internal: tuple[str, ...]) -> list[FrameType]:
    """The calling thread's user frames, innermost first."""
    out: list[FrameType] = []
    f: FrameType | None = sys._getframe(1)
    while f is not None and len(out) < MAX_FRAMES:
        name = f.f_code.co_filename
        if not name.startswith(internal) and not name.startswith("<"):
            out.append(f)
        f = f.f_back
    return out


def frame_info(f: FrameType) -> dict[str, Any]:
    return {"file": f.f_code.co_filename, "line": f.f_lineno, "func": f.f_code.co_name}


def source_context(file: str, line: int, context: int = CONTEXT) -> list[list[Any]]:
    """``[[lineno, text], ...]`` around ``line``; empty when the file cannot be read."""
    lines = linecache.getlines(file)
    lo, hi = max(1, line - context), min(len(lines), line + context)
    return [[n, lines[n - 1].rstrip("\n")] for n in range(lo, hi + 1)]


def frame_namespace(f: FrameType | None, names: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(globals, locals) to evaluate in frame ``f``: its locals, with the pause's names (``out``,
    ``ins``, ``in0``...) on top, so ``x out`` always means the paused op's output."""
    if f is None:
        return {"torch": torch}, dict(names)
    local = dict(f.f_locals)
    local.update(names)
    if "torch" not in f.f_globals:
        local.setdefault("torch", torch)
    return f.f_globals, local
