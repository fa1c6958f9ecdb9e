"""Text for the panes: node details, a pause, tensor stats, the anomaly chain. Plain functions of
plain data, so the browse view and the live debugger render the same way."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.text import Text

from gprof.graph.formatting import fmt_bytes, fmt_ns
from gprof.graph.model import Node


def bar(frac: float, width: int = 10) -> str:
    n = round(max(0.0, min(1.0, frac)) * width)
    return "█" * n + "░" * (width - n)


def module_label(name: str, e: dict[str, Any], total: dict[str, int]) -> str:
    short = name.rsplit(".", 1)[-1] if name else "(root)"
    fw, bw, mem = e["forward_ns"], e["backward_ns"], e["alloc_bytes"]
    return (f"{escape(short)}  [green]{bar(fw / (total['fwd'] or 1), 6)}[/] {fmt_ns(fw)}"
            f"  [magenta]{bar(bw / (total['bwd'] or 1), 6)}[/] {fmt_ns(bw)}"
            f"  [yellow]{bar(mem / (total['mem'] or 1), 4)}[/] {fmt_bytes(mem)}")


def _mod(m: str | None) -> str:
    return "-" if m is None else (m or "(root)")


def unreadable_text(what: str, error: Exception) -> str:
    """A pane's message when its part of the step file does not decode: what failed, the store's
    own words (which file, what is wrong, re-record or delete it), and that the rest still works."""
    return (f"[b red]{escape(what)} cannot be read[/b red]\n{escape(str(error))}\n"
            "The step's other panes, and the other steps and ranks (] [ } {), still work.")


def node_details(n: Node, partner: Node | None, bwd: list[tuple[int, str]], producers: dict[int, tuple[str, str | None]],
                 consumers: dict[int, tuple[str, str | None]]) -> str:
    lines = [f"[b]{escape(n.op)}[/b]  #{n.idx}  {n.phase}  module [b]{escape(_mod(n.module))}[/b]",
             f"key  {escape(n.key)}",
             f"time {fmt_ns(n.dur_ns)}   alloc {fmt_bytes(n.alloc_bytes)}   live {fmt_bytes(n.live_bytes)}",
             f"source {escape(n.source or '-')}"]
    if n.param:
        lines.append(f"parameter {escape(n.param)}")
    lines.append("[b]inputs[/b]")
    lines += [f"  in{i}  {m.short()}  storage {m.storage}  {fmt_bytes(m.nbytes)}" for i, m in enumerate(n.inputs)] or ["  -"]
    lines.append("[b]outputs[/b]")
    lines += [f"  out{i} {m.short()}  storage {m.storage}  {fmt_bytes(m.nbytes)}" for i, m in enumerate(n.outputs)] or ["  -"]
    if partner is not None:
        lines.append(f"[b]forward partner[/b]  #{partner.idx} {escape(partner.op)} ({escape(_mod(partner.module))})")
    if bwd:
        lines.append("[b]backward partners[/b]  " + ", ".join(f"#{i} {escape(op)}" for i, op in bwd))
    for title, group in (("producers", producers), ("consumers", consumers)):
        if group:
            lines.append(f"[b]{title}[/b]  " + ", ".join(f"#{i} {escape(op)}" for i, (op, _) in list(group.items())[:8]))
    return "\n".join(lines)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def tensor_rows(tensors: list[dict[str, Any]]) -> list[tuple[Text, ...]]:
    """Cells as Text, so a preview like ``[nan, inf]`` is never read as markup. The NaN and Inf
    counts come right after the type, so a narrow terminal cuts the statistics, not them."""
    return [tuple(Text(c) for c in (
        t["name"], "x".join(map(str, t["shape"])) or "scalar", t["dtype"], str(t["nan"]), str(t["inf"]),
        _num(t["min"]), _num(t["max"]), _num(t["mean"]), _num(t["std"]), t["preview"])) for t in tensors]


TENSOR_COLUMNS = ("name", "shape", "dtype", "NaN", "Inf", "min", "max", "mean", "std", "preview")


def tensor_summary(t: dict[str, Any]) -> str:
    """One line for a tensor summary: type, shape, and its finite range or what it holds instead."""
    head = f"{t['dtype']}[{'x'.join(map(str, t['shape']))}]"
    if t["min"] is None:
        if not t["numel"]:
            return f"{head} empty"
        kinds = [k for k in ("nan", "inf") if t[k]]
        if t["nan"] + t["inf"] == t["numel"]:
            return f"{head} all {' or '.join(k.replace('nan', 'NaN').replace('inf', 'Inf') for k in kinds)}"
    return f"{head} min {_num(t['min'])} max {_num(t['max'])} NaN {t['nan']} Inf {t['inf']}"


def chain_text(chain: list[dict[str, Any]]) -> str:
    """The anomaly chain, from the pause back to where the non-finite values entered."""
    lines = ["[b]where the non-finite values came from[/b] (newest first)"]
    for i, c in enumerate(chain):
        lines.append(f"  {'└─' if i else '▶ '} #{c['idx']} {escape(c['op'])}  module {escape(_mod(c['module']))}  "
                     f"{c['phase']}" + (f"  makes {c['makes']}" if c.get("makes") else "  reads it")
                     + (f"  at {escape(c['source'])}" if c.get("source") else ""))
        if c.get("origin"):
            lines.append(f"     [b red]source:[/b red] {escape(c['origin'])}")
    return "\n".join(lines)


def pause_text(p: dict[str, Any]) -> str:
    if p.get("kind") == "post_mortem":
        lines = [f"[b red]POST-MORTEM[/b red] step {p['step']}: {escape(p['reason'])}"]
        if p.get("op"):
            lines += [f"op     [b]{escape(p['op'])}[/b] (raised: not recorded)",
                      f"module [b]{escape(_mod(p['module']))}[/b]   phase [b]{p['phase']}[/b]"]
        lines += [f"thread {escape(p['thread'])}",
                  "the step is saved as incomplete: t browses it; c lets the exception go on"]
        return "\n".join(lines)
    if p.get("idx") is None:
        return f"[b]PAUSED[/b]: {escape(p['reason'])}\nthread {escape(p['thread'])}"
    lines = [f"[b]PAUSED[/b] step {p['step']} node #{p['idx']}: {escape(p['reason'])}",
             f"op     [b]{escape(p['op'])}[/b]",
             f"module [b]{escape(_mod(p['module']))}[/b]   phase [b]{p['phase']}[/b]",
             f"key    {escape(p['key'])}",
             f"thread {escape(p['thread'])}{'' if p['main_thread'] else ' (not the main thread)'}"]
    if p.get("param"):
        lines.append(f"parameter {escape(p['param'])}")
    if p.get("fwd"):
        f = p["fwd"]
        lines.append(f"forward partner #{f['idx']} {escape(f['op'])} ({escape(_mod(f['module']))})")
    if p.get("source"):
        lines.append(f"source {escape(p['source'])}")
    if p.get("chain"):
        lines.append(chain_text(p["chain"]))
    return "\n".join(lines)

