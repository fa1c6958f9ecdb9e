"""Query parameters of the tab's routes, parsed the same way by every route: a malformed value is a
400 with a sentence that says what to pass (``errors.InvalidArgumentError``), never a 5xx.

Kept apart from plugin.py so that the route modules beside it (routes_insight.py) parse with the same
functions without importing the plugin.
"""
from __future__ import annotations

from typing import overload

from tensorboard import errors
from werkzeug import wrappers

from gprof.analyses.runner import check_target
from gprof.store.decode import integer
from gprof_tb.stepdata import Target

#: the longest text parameter accepted (an expanded-module list of a 6,000-module model fits)
MAX_TEXT = 10_000


@overload
def int_param(request: wrappers.Request, name: str, default: int, lo: int = 0, hi: int = 2**62) -> int: ...
@overload
def int_param(request: wrappers.Request, name: str, default: None = None, lo: int = 0,
              hi: int = 2**62) -> int | None: ...
def int_param(request: wrappers.Request, name: str, default: int | None = None, lo: int = 0,
              hi: int = 2**62) -> int | None:
    """An integer in ``lo..hi`` (ASCII digits with an optional sign: ``gprof.store.decode.integer``), or
    ``default`` when absent or empty."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = integer(raw)
    except ValueError:
        raise errors.InvalidArgumentError(
            f"parameter {name!r} must be an integer (ASCII digits), got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise errors.InvalidArgumentError(f"parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value


def text_param(request: wrappers.Request, name: str, default: str | None = None) -> str | None:
    """A text parameter of at most :data:`MAX_TEXT` characters without NUL bytes."""
    raw = request.args.get(name, default)
    if raw is not None and (len(raw) > MAX_TEXT or "\x00" in raw):
        raise errors.InvalidArgumentError(f"parameter {name!r} is too long or contains a NUL byte")
    return raw


def choice_param(request: wrappers.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices``; ``default`` when absent or empty."""
    value = text_param(request, name, default) or default
    if value not in choices:
        raise errors.InvalidArgumentError(f"parameter {name!r} must be one of {', '.join(choices)}; got {value[:40]!r}")
    return value


def fusion_target(request: wrappers.Request) -> Target:
    """The ``target`` (cpu, cuda) and ``gpu`` (a name of ``gprof.analyses.gpu_specs.GPUS``, implying cuda)
    parameters of the routes that show fusion or findings; None when both are absent: the analyses stored
    with the step, which need no re-run."""
    target, gpu = text_param(request, "target") or None, text_param(request, "gpu") or None
    if target is None and gpu is None:
        return None
    try:
        return check_target(target, gpu)
    except ValueError as e:
        raise errors.InvalidArgumentError(str(e)) from None
