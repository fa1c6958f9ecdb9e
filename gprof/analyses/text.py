"""The stored analysis results as report text. Torch-free: readers import this, not the package,
whose entry point (``run_all``) needs torch."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

FormatText = Callable[[dict[str, Any]], list[str]]


def formatters() -> list[tuple[str, FormatText]]:
    """(analysis name, its text formatter), in the order the analyses run."""
    from gprof.analyses import fusion, hazards, opclass, optimizer, regions

    return [("op_classes", opclass.format_op_classes), ("fusion", fusion.format_text),
            ("hazards", hazards.format_text), ("compile_suggestions", regions.format_text),
            ("optimizer_advice", optimizer.format_text)]


def format_results(step_report: dict[str, Any]) -> list[str]:
    """Text lines for every analysis result in a report step; a failed analysis says so in one line."""
    lines: list[str] = []
    for name, fmt in formatters():
        value = step_report.get(name)
        if value is None:
            continue
        if isinstance(value, dict) and "error" in value and len(value) == 1:
            lines.append(f"   {name}: analysis failed: {value['error']}")
            continue
        lines.extend(fmt(step_report))
    return lines
