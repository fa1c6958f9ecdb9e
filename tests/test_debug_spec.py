"""Breakpoint specs: every documented form parses to the right target and condition, and bad
specs fail up front with a message that shows the accepted forms."""
from __future__ import annotations

import pytest

from gprof.debug.spec import BreakpointSpecError, parse_breakpoint
from gprof.graph.model import Node


def node(module: str | None = "encoder.layers.0.linear1", phase: str = "forward", op: str = "aten.addmm.default",
         occurrence: int = 0) -> Node:
    m = "-" if module is None else module
    return Node(idx=0, key=f"{m}:{phase}:{op}#{occurrence}", op=op, phase=phase, module=module)


@pytest.mark.parametrize("spec, hits, misses", [
    ("encoder.layers.0.linear1:forward:aten.addmm.default#0", [node()], [node(occurrence=1), node(phase="backward")]),
    ("@encoder", [node(), node(module="encoder")], [node(module="encoderx"), node(module=None)]),
    ("@encoder.layers.0:backward", [node(phase="backward")], [node()]),
    ("@", [node(module="")], [node(module=None)]),
    ("addmm", [node()], [node(op="aten.mm.default")]),
    ("aten.addmm", [node()], [node(op="aten.add.Tensor")]),
    ("aten.addmm.default:backward", [node(phase="backward")], [node()]),
    ("-:other:aten.ones_like.default#0", [node(None, "other", "aten.ones_like.default")], [node()]),
])
def test_targets_match_the_nodes_they_name(spec: str, hits: list[Node], misses: list[Node]) -> None:
    bp = parse_breakpoint(spec)
    assert bp.condition is None
    assert all(bp.target.matches(n) for n in hits)
    assert not any(bp.target.matches(n) for n in misses)


@pytest.mark.parametrize("spec, kind, target", [
    ("nan", "nan", "any"), ("inf", "inf", "any"), ("absmax > 1e4", "absmax", "any"),
    ("absmax>=3", "absmax", "any"), ("if out.sum() > 0", "expr", "any"),
    ("@head if nan", "nan", "module"), ("mm:backward if out.abs().max() > 10", "expr", "op"),
])
def test_conditions(spec: str, kind: str, target: str) -> None:
    bp = parse_breakpoint(spec)
    assert bp.condition is not None and bp.condition.kind == kind
    assert bp.target.kind == target


def test_absmax_threshold() -> None:
    c = parse_breakpoint("absmax >= 2.5").condition
    assert c is not None and c.threshold == 2.5 and c.inclusive


@pytest.mark.parametrize("spec, says", [
    ("", "empty breakpoint"),
    ("absmax > lots", "absmax needs a number"),
    ("absmax < 3", "absmax > NUMBER"),
    ("@head if out.sum( >", "not a Python expression"),
    ("@head:sideways", "phase 'sideways'"),
    ("notanop_xyz", "unknown op 'notanop_xyz'"),
    ("a:sideways:aten.mm.default#0", "phase 'sideways'"),
    ("@head if ", "empty condition"),
    ("@bad name!", "not a module name"),
])
def test_bad_specs_say_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(BreakpointSpecError) as e:
        parse_breakpoint(spec)
    assert says in str(e.value)


def test_debug_command_rejects_a_bad_spec_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    from gprof.cli import main

    assert main(["debug", "--break", "absmax > lots", "examples/nan_example.py"]) == 2
    err = capsys.readouterr().err
    assert "absmax needs a number, got 'lots'" in err and "Traceback" not in err
    assert main(["debug", "no_such_script.py"]) == 2
    assert "no_such_script.py: no such script" in capsys.readouterr().err
