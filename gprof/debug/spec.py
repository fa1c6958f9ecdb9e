"""Breakpoint specs: where to pause (a target) and when (a condition).

Grammar (documented in docs/debugger.md)::

    SPEC      := ["once "] ["ignore " N " "] BODY  one-shot (deleted after its first pause);
                                                  the first N hits do not pause
    BODY      := TARGET | TARGET " if " COND | COND | "if " COND
    TARGET    := <module>:<phase>:<op>#<n>        a stable node key
               | <file>.py:<line>                 the nodes recorded from that source line
               | "@" <module fqn> [":" <phase>]   a module and its submodules (``@`` alone: the root)
               | <op> [":" <phase>]               an op: ``addmm``, ``aten.addmm`` or ``aten.addmm.default``
    COND      := "nan" | "inf" | "absmax" (">" | ">=") <number> | <python expression>

``nan`` and ``inf`` mean *new* non-finite values: the output has a NaN (Inf) that no input had, so
a pause lands on the first producer, not on every op the NaN flows through. Python expressions see
``out`` (the first output tensor), ``outs``, ``ins`` and ``torch``.

Specs are parsed once, up front, so a typo is an error at ``--break`` time, never mid-step.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from gprof.graph.keys import parse_key
from gprof.graph.model import PHASES, Node

_ABSMAX_RE = re.compile(r"^absmax\s*(>=|>)\s*(\S+)$")
_IF_RE = re.compile(r"\s+if(?:\s+|$)")
_KEY_RE = re.compile(r"^[^:]*:[^:]+:[^:]+#\d+$")
_LINE_RE = re.compile(r"^(.+\.py):(\d+)$")
_MODIFIER_RE = re.compile(r"^(once|ignore\s+(\S+))\s+")


class BreakpointSpecError(ValueError):
    """A spec that cannot be parsed; the message shows the accepted forms."""


SYNTAX_HELP = (
    "breakpoint forms: 'nan', 'inf', 'absmax > 1e4', '@encoder.layers.0', '@encoder:backward', "
    "'addmm', 'aten.mm.default:backward', '<module>:<phase>:<op>#<n>' (a stable node key), 'train.py:42' "
    "(a source line), 'TARGET if COND', e.g. '@head if out.abs().max() > 10', and the prefixes 'once ' and "
    "'ignore N ' (see docs/debugger.md)"
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
    kind: str  # "any" | "key" | "module" | "op" | "line"
    value: str = ""
    phase: str | None = None
    line: int = 0

    def matches(self, node: Node) -> bool:
        if self.phase is not None and node.phase != self.phase:
            return False
        if self.kind == "any":
            return True
        if self.kind == "key":
            return node.key == self.value
        if self.kind == "line":
            return _same_line(node.source, self.value, self.line)
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
    #: deleted after its first pause (pdb's tbreak)
    once: bool = False
    #: hits still to let pass before one pauses (pdb's ignore)
    ignore: int = 0
    #: the condition raised (said once; the breakpoint then never pauses on that error)
    error: str | None = None
    #: the target matched nothing in a whole recorded step (a misspelt module, an op that never runs)
    warning: str | None = None
    #: nodes the target matched (condition or not), and whether it existed for a whole step
    matched: int = 0
    armed: bool = False

    @property
    def entry_only(self) -> bool:
        """A module breakpoint without a condition pauses on entering the module, not on each of
        its ops, so ``n`` can step over the module."""
        return self.target.kind == "module" and self.condition is None

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "spec": self.spec, "enabled": self.enabled, "hits": self.hits, "once": self.once,
                "ignore": self.ignore, "error": self.error, "warning": self.warning}


def _same_line(source: str | None, file: str, line: int) -> bool:
    """Whether a node's source (``path:line in func``, path relative to the cwd when inside it)
    is ``file:line``; either path may be a suffix of the other."""
    if source is None:
        return False
    where = source.rpartition(" in ")[0] or source
    src_file, _, src_line = where.rpartition(":")
    if src_line != str(line):
        return False
    return src_file == file or src_file.endswith("/" + file) or file.endswith("/" + src_file)


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
    line = _LINE_RE.match(text)
    if line:
        return Target("line", line[1], line=int(line[2]))
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


def _modifiers(text: str, spec: str) -> tuple[str, bool, int]:
    """(the rest of the spec, once, ignore count) from the leading ``once `` / ``ignore N ``."""
    once, ignore = False, 0
    while m := _MODIFIER_RE.match(text):
        if m[1] == "once":
            once = True
        else:
            try:
                ignore = int(m[2])
            except ValueError:
                raise BreakpointSpecError(f"bad breakpoint {spec!r}: ignore needs a count, got {m[2]!r} "
                                          "(e.g. 'ignore 3 @head')") from None
        text = text[m.end():]
    return text, once, ignore


def _parse_body(text: str, spec: str) -> tuple[Target, Condition | None]:
    if not text:
        raise BreakpointSpecError(f"empty breakpoint. {SYNTAX_HELP}")
    if text.startswith("if "):
        return Target("any"), _parse_condition(text[3:], spec)
    parts = _IF_RE.split(text, maxsplit=1)
    if len(parts) == 2:
        return _parse_target(parts[0], spec), _parse_condition(parts[1], spec)
    if text in ("nan", "inf") or text.startswith("absmax"):
        return Target("any"), _parse_condition(text, spec)
    return _parse_target(text, spec), None


def parse_breakpoint(spec: str, id: int = 0) -> Breakpoint:
    """Parse one ``--break`` value; raises :class:`BreakpointSpecError` with the accepted forms."""
    text, once, ignore = _modifiers(spec.strip(), spec)
    target, condition = _parse_body(text.strip(), spec)
    return Breakpoint(spec.strip(), target, condition, id=id, once=once, ignore=ignore)


def unmatched_reason(bp: Breakpoint, modules: list[str], step: int) -> str:
    """Why a breakpoint matched no node of a whole recorded step, with the nearest module names
    for a misspelt ``@module``."""
    t = bp.target
    phase = f" in {t.phase}" if t.phase else ""
    if t.kind == "module":
        near = difflib.get_close_matches(t.value, modules, n=3)
        hint = f"; did you mean {', '.join(repr(m) for m in near)}?" if near else ""
        return f"matched nothing in step {step}: no module {t.value!r} ran{phase}{hint}"
    if t.kind == "op":
        return f"matched nothing in step {step}: op {t.value!r} did not run{phase}"
    if t.kind == "line":
        return f"matched nothing in step {step}: no op was recorded from {t.value}:{t.line}{phase}"
    return f"matched nothing in step {step}: no node has this key"
