"""Decoding the debug protocol's JSON lines safely, for both ends (gprof/debug/server.py
documents the messages).

A line comes from another process, and before the token is checked, from anyone on the
machine. So a line is bounded in size by its reader, and its nesting is measured before
``json.loads`` sees it: the C decoder recurses once per level, and a line of 100,000 ``[``
would raise ``RecursionError`` (not ``ValueError``) on the server's thread.
"""
from __future__ import annotations

import json
from typing import Any

#: the first line, ``{"token": "<32 hex digits>"}``, is under 60 bytes
MAX_HELLO_BYTES = 4096
#: protocol messages are flat objects with small lists inside (a pause's tensor summaries)
MAX_DEPTH = 16


class ProtocolError(ValueError):
    """A line that is not one protocol message; the text says what is wrong with it."""


def _depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in ``text``, outside JSON strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def decode(line: bytes | str, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """One message: a JSON object nested at most ``max_depth`` deep, else :class:`ProtocolError`."""
    try:
        text = line.decode() if isinstance(line, bytes) else line
    except UnicodeDecodeError:
        raise ProtocolError("not UTF-8") from None
    if _depth(text) > max_depth:
        raise ProtocolError(f"nested deeper than {max_depth} levels")
    try:
        msg = json.loads(text)
    except ValueError:
        raise ProtocolError("not JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"a JSON {type(msg).__name__}, not an object")
    return msg
