"""Breakpoint specs: where to pause (a target) and when (a condition).

Grammar (documented in docs/debugger.md)::

    SPEC      := TARGET | TARGET " if " COND | COND | "if " COND
    TARGET    := <module>:<phase>:<op>#<n>        a stable node key
               | "@" <module fqn> [":" <phase>]   a module and its submodules (``@`` alone: the root)
               | <op> [":" <phase>]               an op: ``addmm``, ``aten.addmm`` or ``aten.addmm.default``
    COND      := "nan" | "inf" | "absmax" (">" | ">=") <number> | <python expression>

``nan`` and ``inf`` mean *new* non-finite values: the output has a NaN (Inf) that no input had, so
a pause lands on the first producer, not on every op the NaN flows through. Python expressions see
``out`` (the first output tensor), ``outs``, ``ins`` and ``torch``.

Specs are parsed once, up front, so a typo is an error at ``--break`` time, never mid-step.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gprof.graph.keys import parse_key
from gprof.graph.model import PHASES, Node

_ABSMAX_RE = re.compile(r"^absmax\s*(>=|>)\s*(\S+)$")
_IF_RE = re.compile(r"\s+if(?:\s+|$)")
_KEY_RE = re.compile(r"^[^:]*:[^:]+:[^:]+#\d+$")


class BreakpointSpecError(ValueError):
    """A spec that cannot be parsed; the message shows the accepted forms."""


SYNTAX_HELP = (
    "breakpoint forms: 'nan', 'inf', 'absmax > 1e4', '@encoder.layers.0', '@encoder:backward', "
    "'addmm', 'aten.mm.default:backward', '<module>:<phase>:<op>#<n>' (a stable node key), "
    "and 'TARGET if COND', e.g. '@head if out.abs().max() > 10' (see docs/debugger.md)"
)


@dataclass(frozen=True)
class Condition:
    kind: str  # "nan" | "inf" | "absmax" | "expr"
    threshold: float = 0.0
    inclusive: bool = False
    expr: str = ""
    code: Any = field(default=None, compare=False, repr=False)

    @property
    def needs_finiteness(self) -> bool:
        return self.kind in ("nan", "inf")


@dataclass(frozen=True)
class Target:
    kind: str  # "any" | "key" | "module" | "op"
    value: str = ""
    phase: str | None = None

    def matches(self, node: Node) -> bool:
        if self.phase is not None and node.phase != self.phase:
            return False
        if self.kind == "any":
            return True
        if self.kind == "key":
            return node.key == self.value
        if self.kind == "module":
            m = node.module
            if m is None:
                return False
            return self.value == "" or m == self.value or m.startswith(self.value + ".")
        op = node.op
        return op == self.value or op.startswith(self.value + ".") or node.op_short == self.value


@dataclass
class Breakpoint:
    spec: str
    target: Target
    condition: Condition | None
    enabled: bool = True
    hits: int = 0
    id: int = 0

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "spec": self.spec, "enabled": self.enabled, "hits": self.hits}


def _parse_condition(text: str, spec: str) -> Condition:
    text = text.strip()
    if not text:
        raise BreakpointSpecError(f"bad breakpoint {spec!r}: empty condition after 'if'. {SYNTAX_HELP}")
    if text in ("nan", "inf"):
        return Condition(text)
    m = _ABSMAX_RE.match(text)
    if m:
        try:
            value = float(m[2])
        except ValueError:
            raise BreakpointSpecError(
                f"bad breakpoint {spec!r}: absmax needs a number, got {m[2]!r} (e.g. 'absmax > 1e4')") from None
        return Condition("absmax", threshold=value, inclusive=m[1] == ">=")
    if text.startswith("absmax"):
        raise BreakpointSpecError(f"bad breakpoint {spec!r}: write 'absmax > NUMBER' or 'absmax >= NUMBER'")
    try:
        code = compile(text, "<breakpoint condition>", "eval")
    except SyntaxError as e:
        raise BreakpointSpecError(
            f"bad breakpoint {spec!r}: condition {text!r} is not a Python expression ({e.msg}). {SYNTAX_HELP}"
        ) from None
    return Condition("expr", expr=text, code=code)


def _check_op(name: str, spec: str) -> None:
    import torch

    parts = name.split(".")
    if len(parts) == 1:
        parts = ["aten", parts[0]]
    try:
        obj: Any = torch.ops
        for p in parts[:3]:
            obj = getattr(obj, p)
    except (AttributeError, RuntimeError):
        raise BreakpointSpecError(
            f"bad breakpoint {spec!r}: unknown op {name!r} (no torch.ops.{'.'.join(parts)}). {SYNTAX_HELP}"
        ) from None


def _parse_target(text: str, spec: str) -> Target:
    text = text.strip()
    if _KEY_RE.match(text):
        try:
            k = parse_key(text)
        except ValueError as e:
            raise BreakpointSpecError(f"bad breakpoint {spec!r}: {e}") from None
        if k.phase not in PHASES:
            raise BreakpointSpecError(f"bad breakpoint {spec!r}: phase {k.phase!r} is not one of {', '.join(PHASES)}")
        return Target("key", text)
    head, sep, phase = text.partition(":")
    if sep and phase not in PHASES:
        raise BreakpointSpecError(
            f"bad breakpoint {spec!r}: phase {phase!r} is not one of {', '.join(PHASES)}. {SYNTAX_HELP}")
    ph = phase if sep else None
    if head.startswith("@"):
        fqn = head[1:]
        if fqn and not re.fullmatch(r"[\w.\-]+", fqn):
            raise BreakpointSpecError(f"bad breakpoint {spec!r}: {fqn!r} is not a module name. {SYNTAX_HELP}")
        return Target("module", fqn, ph)
    if not re.fullmatch(r"[A-Za-z_][\w.]*", head):
        raise BreakpointSpecError(f"bad breakpoint {spec!r}: cannot read target {head!r}. {SYNTAX_HELP}")
    _check_op(head, spec)
    return Target("op", head, ph)


def parse_breakpoint(spec: str, id: int = 0) -> Breakpoint:
    """Parse one ``--break`` value; raises :class:`BreakpointSpecError` with the accepted forms."""
    text = spec.strip()
    if not text:
        raise BreakpointSpecError(f"empty breakpoint. {SYNTAX_HELP}")
    if text.startswith("if "):
        return Breakpoint(spec, Target("any"), _parse_condition(text[3:], spec), id=id)
    parts = _IF_RE.split(text, maxsplit=1)
    if len(parts) == 2:
        target_text, cond_text = parts
        return Breakpoint(spec, _parse_target(target_text, spec), _parse_condition(cond_text, spec), id=id)
    if text in ("nan", "inf") or text.startswith("absmax"):
        return Breakpoint(spec, Target("any"), _parse_condition(text, spec), id=id)
    return Breakpoint(spec, _parse_target(text, spec), None, id=id)
