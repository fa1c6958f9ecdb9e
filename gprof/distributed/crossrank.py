"""Cross-rank analysis of a multi-rank run: per-rank step time and communication share, the
straggler and the node where ranks diverge most, and mismatched collective sequences.

``gprof.report`` calls :func:`cross_rank_report` for runs with more than one rank and stores the
result as the report's ``cross_rank`` object (schema: docs/distributed.md); :func:`format_cross_rank`
is its text. Step files are read through ``gprof.store`` only.
"""
from __future__ import annotations

from typing import Any

from gprof.distributed.mismatch import calls_by_group, find_mismatches
from gprof.distributed.timeline import RankTimes, is_collective, rank_times
from gprof.graph.collectives import BucketTracker
from gprof.graph.formatting import fmt_bytes, fmt_ns
from gprof.graph.model import Node
from gprof.store import Run, StepFile, StepReader, StoreError
from gprof.store.queries.collectives import rank_step

CROSS_RANK_SCHEMA_VERSION = 1


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _load(f: StepFile) -> tuple[dict[str, Any], RankTimes, list[Node]]:
    """A rank's entry, its time accounting and its collectives (and parameter-gradient nodes), in
    idx order. Only those nodes are decoded (``rank_step``): the rest is start, duration and key."""
    with StepReader(f.path) as r:
        meta = r.meta
        step = rank_step(r)
        nodes = [step.full[i] for i in sorted(step.full)]
        buckets = BucketTracker()
        for n in nodes:  # fills bucket attrs on files whose capture did not
            buckets.observe(n)
        t = rank_times(f.rank, step, meta.wall_ns, meta.extra.get("start_ns"))
    entry = {"rank": t.rank, "complete": meta.complete, "error": meta.error, "wall_ns": t.wall_ns,
             "compute_ns": t.compute_ns, "comm_ns": t.comm_ns, "comm_wait_ns": t.wait_ns, "other_ns": t.other_ns,
             "busy_ns": t.busy_ns, "compute_share": _share(t.compute_ns, t.wall_ns),
             "comm_share": _share(t.comm_ns, t.wall_ns), "collectives": t.collectives, "comm_bytes": t.comm_bytes,
             "buckets": _buckets(nodes)}
    return entry, t, nodes


def _buckets(nodes: list[Node]) -> list[dict[str, Any]]:
    return [{"bucket": n.attrs["bucket"], "key": n.key, "bytes": n.attrs.get("bytes", 0),
             "params": n.attrs.get("bucket_params", [])}
            for n in nodes if is_collective(n) and "bucket" in n.attrs]


def _divergence(times: list[RankTimes], files: dict[int, StepFile]) -> dict[str, Any] | None:
    """The node (by stable key, present on every rank) whose busy stretch differs most; its op, module
    and source lines are read from the slowest and fastest ranks' files."""
    common = set(times[0].busy_by_key)
    for t in times[1:]:
        common &= set(t.busy_by_key)
    best: tuple[int, str] | None = None
    for key in common:
        vals = [t.busy_by_key[key] for t in times]
        spread = max(vals) - min(vals)
        if best is None or spread > best[0] or (spread == best[0] and key < best[1]):
            best = (spread, key)
    if best is None:
        return None
    spread, key = best
    slow = max(times, key=lambda t: (t.busy_by_key[key], -t.rank))
    fast = min(times, key=lambda t: (t.busy_by_key[key], t.rank))
    node, fast_node = (_node_by_key(files[t.rank], key) for t in (slow, fast))
    return {"key": key, "op": node and node.op, "module": node and node.module, "phase": node and node.phase,
            "spread_ns": spread, "slow_rank": slow.rank, "fast_rank": fast.rank,
            "source": node and node.source, "fast_source": fast_node and fast_node.source,
            "busy_ns": {str(t.rank): t.busy_by_key[key] for t in times}}


def _node_by_key(f: StepFile, key: str) -> Node | None:
    with StepReader(f.path) as r:
        return r.node_by_key(key)


def _skew(times: list[RankTimes], files: dict[int, StepFile]) -> dict[str, Any] | None:
    if len(times) < 2:
        return None
    slow = max(times, key=lambda t: (t.busy_ns, -t.rank))
    fast = min(times, key=lambda t: (t.busy_ns, t.rank))
    return {"straggler_rank": slow.rank, "fastest_rank": fast.rank, "lag_ns": slow.busy_ns - fast.busy_ns,
            "lag_share": _share(slow.busy_ns - fast.busy_ns, slow.wall_ns),
            "busy_ns": {str(t.rank): t.busy_ns for t in times}, "node": _divergence(times, files)}


def _step_report(step: int, files: list[StepFile], ranks: list[int], world: int) -> dict[str, Any]:
    entries, times, calls, unreadable = [], [], {}, []
    for f in sorted(files, key=lambda f: f.rank):
        try:
            entry, t, nodes = _load(f)
        except StoreError as e:  # one bad rank file must not hide the others
            unreadable.append({"rank": f.rank, "file": str(f.path), "error": str(e)})
            continue
        times.append(t)
        entries.append(entry)
        calls[f.rank] = calls_by_group(f.rank, nodes)
    present = {f.rank for f in files}
    mismatches = find_mismatches(calls, world) if len(calls) > 1 else []
    for m in mismatches:
        m["step"] = step
    out = {"step": step, "ranks": entries, "missing_ranks": [r for r in ranks if r not in present],
           "skew": _skew(times, {f.rank: f for f in files}), "mismatches": mismatches}
    return {**out, "unreadable_ranks": unreadable} if unreadable else out


def _overall_straggler(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    lag: dict[int, int] = {}
    count: dict[int, int] = {}
    for s in steps:
        sk = s["skew"]
        if sk is None:
            continue
        r = sk["straggler_rank"]
        lag[r] = lag.get(r, 0) + sk["lag_ns"]
        count[r] = count.get(r, 0) + 1
    if not lag:
        return None
    rank = max(lag, key=lambda r: (lag[r], -r))
    return {"rank": rank, "slowest_in_steps": count[rank], "steps": sum(count.values()), "total_lag_ns": lag[rank]}


def cross_rank_report(run: Run, step: int | None = None) -> dict[str, Any]:
    """The ``cross_rank`` report object for every step of ``run`` (or only ``step``)."""
    files = run.files()
    if not files:
        raise StoreError(f"run {run.name!r} has no recorded steps yet (looked in {run.data_dir})")
    ranks = sorted({f.rank for f in files})
    world = max(max(f.world_size for f in files), len(ranks))
    steps = sorted({f.step for f in files}) if step is None else [step]
    if step is not None and not any(f.step == step for f in files):
        raise StoreError(f"run {run.name!r} has no step {step} on any rank; steps: {sorted({f.step for f in files})}")
    per_step = [_step_report(s, [f for f in files if f.step == s], ranks, world) for s in steps]
    return {
        "schema_version": CROSS_RANK_SCHEMA_VERSION,
        "world_size": world,
        "ranks": ranks,
        "steps": per_step,
        "straggler": _overall_straggler(per_step),
        "mismatch_count": sum(len(s["mismatches"]) for s in per_step),
    }


# ------------------------------------------------------------------------------------ text
def _where(side: dict[str, Any]) -> str:
    if side.get("missing"):
        last = side.get("last")
        after = f"; its last was #{last['index']} {last['call']} at {last['source'] or last['key']}" if last else ""
        return f"rank {side['rank']}: (no collective #{side['index']}: issued {side['issued']}{after})"
    return f"rank {side['rank']}: #{side['index']} {side['call']} at {side['source'] or side['key']}"


def format_cross_rank(d: dict[str, Any]) -> list[str]:
    """Text lines for the report's ``cross_rank`` object."""
    lines = [f"== cross-rank: {len(d['ranks'])} ranks of {d['world_size']}"]
    for s in d["steps"]:
        lines.append(f"   step {s['step']:<6}      wall    compute       comm    (wait)      other  comm share"
                     "  collectives")
        for e in s["ranks"]:
            flag = "" if e["complete"] else f"  INCOMPLETE: {e['error']}"
            lines.append(f"     rank {e['rank']:<4} {fmt_ns(e['wall_ns']):>10} {fmt_ns(e['compute_ns']):>10} "
                         f"{fmt_ns(e['comm_ns']):>10} {fmt_ns(e['comm_wait_ns']):>9} {fmt_ns(e['other_ns']):>10} "
                         f"{e['comm_share']:>10.1%}  {e['collectives']:>4} ({fmt_bytes(e['comm_bytes'])}){flag}")
        if s["missing_ranks"]:
            lines.append(f"     no file for rank(s) {', '.join(map(str, s['missing_ranks']))} "
                         "(crashed or killed before the step was saved?)")
        for u in s.get("unreadable_ranks", []):
            lines.append(f"     rank {u['rank']} skipped: {u['error']}")
        sk = s["skew"]
        if sk is not None:
            lines.append(f"   straggler: rank {sk['straggler_rank']}, {fmt_ns(sk['lag_ns'])} more busy time than "
                         f"rank {sk['fastest_rank']} ({sk['lag_share']:.1%} of its step)")
            nd = sk["node"]
            if nd is not None:
                lines.append(f"   ranks diverge most in the stretch up to {nd['key']}: rank {nd['slow_rank']} "
                             f"{fmt_ns(nd['busy_ns'][str(nd['slow_rank'])])} vs rank {nd['fast_rank']} "
                             f"{fmt_ns(nd['busy_ns'][str(nd['fast_rank'])])}"
                             + (f", at {nd['source']}" if nd["source"] else ""))
        for m in s["mismatches"]:
            lines.append(f"   MISMATCHED COLLECTIVES (step {m['step']}, group {m['group']}, {m['type']}): {m['message']}")
            lines.extend(f"     {_where(side)}" for side in m["ranks"])
    st = d["straggler"]
    if st is not None and len(d["steps"]) > 1:
        lines.append(f"   overall straggler: rank {st['rank']}, slowest in {st['slowest_in_steps']} of {st['steps']} "
                     f"steps ({fmt_ns(st['total_lag_ns'])} behind in total)")
    if d["mismatch_count"] == 0:
        lines.append("   collective sequences match across ranks")
    return lines
