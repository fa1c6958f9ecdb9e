"""The tab's insight routes (issue 14): overview, shape-aware diff, memory by operator, ranks, timeline.

Units: every number's unit is its field name's suffix (``_ns`` nanoseconds, ``_bytes`` bytes, ``_bps``
bytes per second, ``share`` a fraction 0..1, ``nodes``/``calls``/``count`` counts), which the front
end's ``fmtField`` (static/format.js) formats; text meant to be shown as is (a finding's ``title``,
``saving``, ``detail``, ``module_label``) is preformatted here with gprof.graph.formatting, the same
text ``torch-gprof report`` prints. Arrays of arrays (timeline items, trend) name their columns in
a ``columns`` field. Every route reads through gprof.store.queries and caches per step file.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tensorboard import errors
from werkzeug import wrappers

from gprof.distributed import cross_rank_report
from gprof.store import Run, StepFile, StoreError
from gprof.store import queries as q
from gprof.store.queries.findings import marked_chains
from gprof.store.queries.memory_ops import memory_by_op
from gprof.store.queries.overview import step_trend, time_split, top_modules
from gprof.store.queries.shapes import tensor_changes
from gprof.store.queries.timeline import timeline, timeline_arrays
from gprof_tb.params import fusion_target, int_param
from gprof_tb.stepdata import StepCache, StepData


class StepSource(Protocol):
    """What these routes need of the plugin: its run and step lookups (which turn bad parameters into
    4xx) and its cache. A protocol, so this module never imports plugin.py, which imports it."""

    cache: StepCache

    def run_of(self, request: wrappers.Request) -> Run: ...

    def file_of(self, request: wrappers.Request, step_param: str = "step") -> tuple[Run, StepFile]: ...

    def data_of(self, request: wrappers.Request, step_param: str = "step") -> StepData: ...


def overview(plugin: StepSource, request: wrappers.Request) -> Any:
    """``/overview?run&step&rank&target&gpu`` (findings for that fusion target, default the stored ones): {headline, time: {time_ns, by_phase, by_op_class: [{name, time_ns,
    nodes, share}]}, top_modules: [{module, type, time_ns, ...}], trend: [{step, wall_ns,
    peak_memory_bytes, nodes}], findings: [{number, id, kind, title, saving, saving_ns, share,
    module, module_label, phase, source, node, key, nodes, detail, snippet?}], marking: legend}."""
    run, f = plugin.file_of(request)
    data = plugin.cache.get(f.path)
    found = data.findings(fusion_target(request))

    def compute() -> dict[str, Any]:
        return {"time": time_split(data.module_phase_stats(), data.op_stats()),
                "top_modules": top_modules(data.modules(), data.module_types())}
    trend_files = [x for x in run.files() if x.rank == f.rank]
    return {"run": run.name, "step": f.step, "rank": f.rank, "headline": data.headline(), **data.memo("overview", compute),
            "trend": data.memo(("trend", tuple(x.step for x in trend_files)), lambda: step_trend(trend_files)),
            "findings": [{k: v for k, v in x.items() if k != "nodes"} | {"nodes": x["nodes"][:50]} for x in found],
            "marking": marked_chains(found)[1]}


def diff(plugin: StepSource, request: wrappers.Request) -> Any:
    """``/diff?run&step&base&rank`` (or the older ``a``/``b``): base defaults to the step before
    ``step``. {base, step, empty, message, shape_changes: [{key, idx, op, module, phase, what,
    inputs_before, inputs_after, outputs_before, outputs_after}], shape_changes_total, nodes_a,
    nodes_b, added, removed, unchanged, changes: [...]}: tensor changes (what recompiles) first."""
    run = plugin.run_of(request)
    rank = int_param(request, "rank")
    step = int_param(request, "step", int_param(request, "b"))
    base = int_param(request, "base", int_param(request, "a"))
    try:
        fb = run.file(step, rank)
        steps = sorted({x.step for x in run.files() if x.rank == fb.rank})
        if base is None:
            earlier = [s for s in steps if s < fb.step]
            base = earlier[-1] if earlier else fb.step
        fa = run.file(base, fb.rank)
    except StoreError as e:
        raise errors.NotFoundError(str(e)) from None
    a, b = plugin.cache.get(fa.path), plugin.cache.get(fb.path)
    counts = a.diff(b)
    shapes = b.memo(("tensor_changes", a.key), lambda: tensor_changes(a.reader, b.reader))
    empty = not counts["added"] and not counts["removed"] and not shapes["total"]
    message = (f"no difference: steps {fa.step} and {fb.step} run the same {counts['nodes_b']:,} ops with the same "
               "shapes, dtypes and devices" if empty else
               f"{shapes['total']:,} ops changed shape, dtype or device; {counts['added']:,} added, "
               f"{counts['removed']:,} removed")
    return {"base": fa.step, "step": fb.step, "empty": empty, "message": message, "shape_changes": shapes["rows"],
            "shape_changes_total": shapes["total"], "shape_changes_truncated": shapes["truncated"], **counts}


def memory_ops(plugin: StepSource, request: wrappers.Request) -> Any:
    """``/memory_ops?run&step&rank&from&to`` (``start``/``end`` too; inclusive node indices, default the
    whole step): {start, end, peak_bytes, peak_node, total, truncated, rows: [{op, calls, alloc_bytes,
    freed_bytes, max_live_bytes, peak_node}]}."""
    data = plugin.data_of(request)
    last = max(0, (data.reader.meta.node_count or data.reader.count()) - 1)
    start = int_param(request, "from", int_param(request, "start", 0))
    end = int_param(request, "to", int_param(request, "end", last))
    return data.memo(("memory_ops", start, end), lambda: memory_by_op(data.reader, start, end))


def ranks(plugin: StepSource, request: wrappers.Request) -> Any:
    """``/ranks?run&step``: {step, ranks: [headline + compute_ns, comm_ns, comm_wait_ns, compute_share,
    comm_share, wait_share], skew: {straggler_rank, fastest_rank, lag_ns, lag_share, node: {key, idx, ...}},
    straggler,
    mismatches: [{type, index, message, ranks: [{rank, key, idx, source, call, ...}]}]}."""
    run = plugin.run_of(request)
    try:
        step, chosen = q.step_files(run, int_param(request, "step"))
    except StoreError as e:
        raise errors.NotFoundError(str(e)) from None
    holder = plugin.cache.get(chosen[0].path)
    cross = holder.memo(("cross_rank", tuple(str(x.path) for x in chosen)),
                        lambda: cross_rank_report(run, step)["steps"][0])
    times = {e["rank"]: e for e in cross["ranks"]}
    out = []
    for f in chosen:
        try:
            s = dict(plugin.cache.get(f.path).headline())  # from the write-time aggregates, not a scan
        except StoreError as e:  # one unreadable rank must not hide the others
            out.append({"rank": f.rank, "error": str(e)})
            continue
        t = times.get(f.rank, {})
        wall = t.get("wall_ns") or 0
        s.update({k: t[k] for k in ("compute_ns", "comm_ns", "comm_wait_ns", "compute_share", "comm_share") if k in t})
        s["wait_share"] = round(t.get("comm_wait_ns", 0) / wall, 6) if wall else 0.0
        out.append(s)
    by_rank = {f.rank: f for f in chosen}
    for m in cross["mismatches"]:
        for side in m["ranks"]:
            rank_file = by_rank.get(side.get("rank"))
            side["idx"] = (plugin.cache.get(rank_file.path).node_idx(side["key"])
                           if rank_file and side.get("key") else None)
    skew = cross["skew"]
    if skew and skew.get("node") and skew["straggler_rank"] in by_rank:  # where they diverge, on the straggler
        skew["node"]["idx"] = plugin.cache.get(by_rank[skew["straggler_rank"]].path).node_idx(skew["node"]["key"])
    return {"step": step, "ranks": out, "skew": skew, "straggler": skew and skew["straggler_rank"],
            "mismatches": cross["mismatches"], "missing_ranks": cross["missing_ranks"]}


def timeline_route(plugin: StepSource, request: wrappers.Request) -> Any:
    """``/timeline?run&step&rank&from_ns&to_ns&max``: {mode: "nodes"|"buckets", lanes: [name], from_ns,
    to_ns, span_ns, count, bucket_ns?, columns, items}: nodes one by one when at most ``max`` (default
    5000) fall in the window, else per lane and time bucket (count, busy time, main phase, longest node)."""
    data = plugin.data_of(request)
    lo, hi = int_param(request, "from_ns"), int_param(request, "to_ns")
    cap = int_param(request, "max", 5000, lo=1, hi=50_000)
    arrays = data.memo("timeline_arrays", lambda: timeline_arrays(data.reader))
    if lo is None and hi is None:  # the whole step: what the view opens with, so cached
        return data.memo(("timeline", cap), lambda: timeline(data.reader, arrays, None, None, cap))
    return timeline(data.reader, arrays, lo, hi, cap)


#: served by plugin.py, which wraps each in its ``_route`` (JSON, store errors as 4xx)
INSIGHT_ROUTES: dict[str, Callable[[StepSource, wrappers.Request], Any]] = {
    "/overview": overview, "/diff": diff, "/memory_ops": memory_ops, "/ranks": ranks, "/timeline": timeline_route}
