"""Strict decoding of what readers are handed: a step file's stored records, and integers typed into
a URL or a command line.

A stored value of the wrong shape would otherwise surface as whatever ``TypeError`` or ``KeyError``
its first use raises, deep inside a view. Here it becomes one :class:`CorruptStepError` naming the
file and what is wrong with it, which every reader shows the same way (a 4xx in the TensorBoard
tab, one line from the command line) while it goes on with the other files.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import types
import typing
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class StoreError(Exception):
    """A step file that cannot be read; the message says why and what to do."""


class CorruptStepError(StoreError):
    """A step file whose contents do not decode. ``problem`` says what, for this one file: readers
    skip or flag the file and go on with the others."""

    def __init__(self, path: str | os.PathLike[str], problem: str, cause: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        #: what is wrong inside the value, naming neither the file nor the value (set by ``decoding``)
        self.cause = cause
        super().__init__(f"{self.path}: {problem}. Re-record the step, or delete the file.")


#: ASCII digits, an optional sign, at most 19 digits (every int64). ``int()`` alone also takes
#: ' 1', '1_0' and Arabic-Indic digits, and ``str.isdigit`` passes '²', which ``int`` then refuses.
_INT_RE = re.compile(r"[+-]?[0-9]{1,19}")


def integer(text: str) -> int:
    """``text`` as an integer, strictly; ValueError otherwise. Named for argparse's message
    ("invalid integer value: '²'") when used as an argument's ``type``."""
    if not isinstance(text, str) or not _INT_RE.fullmatch(text):
        raise ValueError(f"not an integer (ASCII digits, optional sign): {str(text)[:40]!r}")
    return int(text)


@contextmanager
def decoding(path: Path, what: str) -> Iterator[None]:
    """Turn the errors a malformed stored value raises while it is decoded into one CorruptStepError."""
    try:
        yield
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
        cause = f"{type(e).__name__}: {e}"
        raise CorruptStepError(path, f"{what} does not decode ({cause})", cause) from None


def load_json(path: Path, what: str, text: Any) -> Any:
    """A stored JSON value; CorruptStepError naming ``what`` when it is not JSON."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as e:
        raise CorruptStepError(path, f"{what} is not valid JSON ({e})") from None


def decode_record(cls: type[T], value: Any, required: Collection[str], path: Path, what: str) -> T:
    """The dataclass ``cls`` from a stored JSON object. Fields ``cls`` does not know (a newer
    writer's) are ignored; ``required`` ones (those every file of this schema has) must be present;
    others take their defaults; every value present must have its field's type."""
    if not isinstance(value, dict):
        raise CorruptStepError(path, f"{what} is a JSON {_kind(value)}, not an object")
    missing = [name for name in required if name not in value]
    if missing:
        raise CorruptStepError(path, f"{what} lacks the field{'s' * (len(missing) > 1)} {', '.join(missing)}")
    hints = _hints(typing.cast(Any, cls))  # a class is hashable; mypy cannot see it through type[T]
    kwargs: dict[str, Any] = {}
    for name, hint in hints.items():
        if name in value:
            decoded = _typed(value[name], hint)
            if decoded is _BAD:
                raise CorruptStepError(path, f"{what}.{name} is a JSON {_kind(value[name])}, not {_name(hint)}")
            kwargs[name] = decoded
    return cls(**kwargs)


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    resolved = typing.get_type_hints(cls)
    return {f.name: resolved[f.name] for f in dataclasses.fields(cls)}


_BAD = object()


def _typed(v: Any, hint: Any) -> Any:
    """``v`` as ``hint`` (JSON lists become tuples where the field is a tuple), or ``_BAD``.
    A hint this does not know keeps the value as stored."""
    if hint is Any:
        return v
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return next((out for out in (_typed(v, h) for h in args) if out is not _BAD), _BAD)
    if hint is type(None):
        return v if v is None else _BAD
    if hint in (int, float):  # JSON has one number type; a bool is not a number here
        return v if isinstance(v, (int, float) if hint is float else int) and not isinstance(v, bool) else _BAD
    if hint in (bool, str):
        return v if isinstance(v, hint) else _BAD
    if origin in (tuple, list):
        if not isinstance(v, (list, tuple)):
            return _BAD
        item = args[0] if args else Any
        items = [_typed(x, item) for x in v]
        return _BAD if any(x is _BAD for x in items) else origin(items)
    if origin is dict:
        if not isinstance(v, dict):
            return _BAD
        value_hint = args[1] if len(args) == 2 else Any
        out = {k: _typed(x, value_hint) for k, x in v.items()}
        return _BAD if any(x is _BAD for x in out.values()) else out
    return v


def _kind(v: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean ({v!r})"
    if isinstance(v, (int, float)):
        return f"number ({v!r})"
    if isinstance(v, str):
        return f"string ({v[:40]!r})"
    names: dict[type, str] = {list: "list", dict: "object"}
    return names.get(type(v), type(v).__name__)


def _name(hint: Any) -> str:
    if typing.get_args(hint):
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))
