"""Latency of the gprof TensorBoard tab on a 1,000,000-node step.

Builds a synthetic step with ``gprof.store.StepWriter``: a 64-layer mixture-of-experts transformer
(attention q/k/v/o, 32 experts of fc1/act/fc2, two norms per layer) run as 35 micro-batches of
forward and backward, then a per-parameter Adam step, with chained dataflow edges, saved-activation
edges from forward to backward and backward->forward links. A second step (17 micro-batches) is
the step diff's other side. Then it measures:

1. every JSON route in-process (TensorBoardWSGI + werkzeug): first call on a cold cache, then p50
   and p95 over interleaved rounds of varied requests;
2. in headless Chromium against a real ``tensorboard``: the first paint of the landing overview (from
   the frame's start and from the tab's first request), then of the collapsed graph, on a cold server,
   on one that had prewarmed the step, and on a second visit to each; and how many bytes the page received.

    python benchmarks/tb_latency.py [--workdir /tmp/gprof-bench] [--rounds 30]
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

from gprof.graph.model import MemorySummary, ModuleInfo, StepMeta
from gprof.store import StepWriter, plugin_dir, step_filename

LAYERS, EXPERTS = 64, 32
RUN = "moe"


def _tensor(shape: tuple[int, ...], storage: int) -> str:
    n = 4
    for d in shape:
        n *= d
    return f"float32|cpu|{','.join(map(str, shape))}|{n}|{storage}"


def _forward_plan() -> list[tuple[str, str, str]]:
    """(module, op, flops-class) for one micro-batch's forward."""
    plan = [("model.embed", "aten.embedding.default", "x")]
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        plan += [(f"{p}.norm1", "aten.native_layer_norm.default", "x")]
        for proj in ("q_proj", "k_proj", "v_proj"):
            plan += [(f"{p}.attn.{proj}", "aten.t.default", "v"), (f"{p}.attn.{proj}", "aten.addmm.default", "mm")]
        plan += [(f"{p}.attn", op, "x") for op in ("aten.view.default", "aten.transpose.int", "aten.bmm.default",
                                                     "aten.div.Tensor", "aten._softmax.default", "aten.bmm.default",
                                                     "aten.transpose.int", "aten.clone.default")]
        plan += [(f"{p}.attn.o_proj", "aten.t.default", "v"), (f"{p}.attn.o_proj", "aten.addmm.default", "mm"),
                 (p, "aten.add.Tensor", "x"), (f"{p}.norm2", "aten.native_layer_norm.default", "x"),
                 (f"{p}.moe.router", "aten.addmm.default", "mm"), (f"{p}.moe", "aten.topk.default", "x")]
        for j in range(EXPERTS):
            e = f"{p}.moe.experts.{j}"
            plan += [(f"{e}.fc1", "aten.addmm.default", "mm"), (f"{e}.act", "aten.gelu.default", "x"),
                     (f"{e}.fc2", "aten.addmm.default", "mm"), (f"{p}.moe", "aten.index_add_.default", "x")]
        plan += [(p, "aten.add.Tensor", "x")]
    plan += [("model.head", "aten.addmm.default", "mm"), ("model.loss", "aten.mse_loss.default", "x")]
    return plan


_BACKWARD_OPS = {"aten.addmm.default": ("aten.mm.default", "aten.mm.default", "aten.sum.dim_IntList"),
                 "aten.t.default": ("aten.t.default",), "aten.view.default": ("aten.view.default",)}


def write_step(path: Path, step: int, microbatches: int) -> int:
    """Write one synthetic step; returns its node count."""
    fwd_plan = _forward_plan()
    params = sorted({m for m, op, _ in fwd_plan if op == "aten.addmm.default"})
    rows: list[tuple] = []
    edges: list[tuple] = []
    rng = random.Random(step)
    t = 1_000_000_000
    live = 512 << 20
    storage = 1000
    chains, hazards = [], []

    def add(module: str | None, phase: str, op: str, counter: dict, fwd: int | None = None, kind: str = "x",
            src: int | None = None, extra_src: int | None = None) -> int:
        nonlocal t, live, storage
        idx = len(rows)
        key_k = (module, phase, op)
        occ = counter.get(key_k, 0)
        counter[key_k] = occ + 1
        dur = rng.randint(2_000, 40_000) * (12 if kind == "mm" else 1)
        alloc = 0 if kind == "v" else 1 << 20
        storage += 1
        live += alloc - (alloc if rng.random() < 0.5 else 0)
        rows.append((idx, f"{'-' if module is None else module}:{phase}:{op}#{occ}", op, phase, module,
                     _tensor((16, 256, 1024), storage - 1), _tensor((16, 256, 1024), storage), t, dur, None, alloc,
                     0, live, (2 * 16 * 256 * 1024 * 1024) if kind == "mm" else 0, "model.py:42 in forward",
                     0, fwd, None, None, None))
        t += dur + 500
        for s in (src, extra_src):
            if s is not None:
                edges.append((s, idx, storage - 1, 16 * 256 * 1024 * 4))
        return idx

    counter: dict = {}
    for _ in range(microbatches):
        fwd_ids: list[int] = []
        prev = None
        for module, op, kind in fwd_plan:
            prev = add(module, "forward", op, counter, kind=kind, src=prev)
            fwd_ids.append(prev)
        for n, ((module, op, kind), f) in enumerate(zip(reversed(fwd_plan), reversed(fwd_ids))):
            for bop in _BACKWARD_OPS.get(op, (op.replace(".default", "_backward.default"),)):
                prev = add(module, "backward", bop, counter, fwd=f, kind=kind, src=prev, extra_src=f)
            if op == "aten.gelu.default" and len(chains) < 2000 and n % 3 == 0:
                chains.append({"nodes": [f - 1, f, f + 1], "ops": ["addmm", "gelu", "addmm"],
                               "saving_ns": 20000, "snippet": f"torch.compile({module.rsplit('.', 1)[0]})"})
            if op == "aten.topk.default" and len(hazards) < 500:
                hazards.append({"node": f, "kind": "dynamic_output_shape", "reason": "topk routing"})
    for module in params:  # per-parameter Adam (foreach-like: 4 ops per weight and bias)
        for _ in range(2):
            prev = None
            for op in ("aten.mul_.Tensor", "aten.addcmul_.default", "aten.sqrt.default", "aten.addcdiv_.default"):
                prev = add(module, "optimizer", op, counter, src=prev)
    mods = {m for r in rows for m in [r[4]] if m}
    every = set()
    for m in mods:
        parts = m.split(".")
        every.update(".".join(parts[:i + 1]) for i in range(len(parts)))
    w = StepWriter(path)
    try:
        for i in range(0, len(rows), 100_000):
            w.add_node_rows(rows[i:i + 100_000])
        w.add_edges(edges)
        w.set_modules([ModuleInfo("", "MoETransformer")] + [ModuleInfo(m, _type(m)) for m in sorted(every)])
        w.set_analysis("fusion", {"chains": chains})
        w.set_analysis("hazards", {"hazards": hazards})
        peak = max(range(len(rows)), key=lambda i: rows[i][12])
        w.commit(StepMeta(run=RUN, step=step, node_count=len(rows), wall_ns=t - 1_000_000_000, created=time.time()),
                 MemorySummary(peak_bytes=rows[peak][12], peak_node=peak, baseline_bytes=512 << 20,
                               by_category={"parameter": 300 << 20, "activation": rows[peak][12] - (300 << 20)}))
    except BaseException:
        w.abort()
        raise
    return len(rows)


def _type(m: str) -> str:
    last = m.rsplit(".", 1)[-1]
    return {"attn": "Attention", "moe": "MoE", "experts": "ModuleList", "layers": "ModuleList", "act": "GELU",
            "router": "Linear", "embed": "Embedding", "loss": "MSELoss", "model": "Model"}.get(
        last, "LayerNorm" if last.startswith("norm") else "Linear" if not last.isdigit() else "Block")


def _requests(nodes: int, rng: random.Random) -> dict[str, list[dict]]:
    layer = rng.randrange(LAYERS)
    expert = rng.randrange(EXPERTS)
    p = f"model.layers.{layer}"
    expansions = ["", "model", "model,model.layers", f"model,model.layers,{p}", f"model,model.layers,{p},{p}.attn",
                  f"model,model.layers,{p},{p}.moe,{p}.moe.experts",
                  f"model,model.layers,{p},{p}.moe,{p}.moe.experts,{p}.moe.experts.{expert},"
                  f"{p}.moe.experts.{expert}.fc1"]
    return {
        "runs": [{}],
        "step": [{"run": RUN}],
        "graph": [{"run": RUN, "expanded": e, "phases": ph} for e in expansions
                  for ph in ("forward", "forward,backward")],
        "node": [{"run": RUN, "idx": rng.randrange(nodes)}],
        "ops": [{"run": RUN, "group": g, "sort": s} for g in ("op", "op_shape", "module")
                for s in ("host_self_ns", "calls")],
        "modules": [{"run": RUN}],
        "memory": [{"run": RUN, "points": 1000}],
        "analyses": [{"run": RUN}],
        "diff": [{"run": RUN, "a": 0, "b": 1}, {"run": RUN}],
        "ranks": [{"run": RUN}],
        # issue 14's routes (tb_plugin/gprof_tb/routes_insight.py)
        "overview": [{"run": RUN}],
        "memory_ops": [{"run": RUN}, {"run": RUN, "from": (a := rng.randrange(nodes)), "to": min(nodes - 1, a + 50_000)}],
        "timeline": [{"run": RUN}, {"run": RUN, "from_ns": (t := rng.randrange(10**9)), "to_ns": t + 10**7},
                     {"run": RUN, "from_ns": t, "to_ns": t + 10**5}],
    }


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def bench_routes(logdir: Path, nodes: int, rounds: int) -> dict[str, dict[str, float]]:
    from gprof_tb.loader import GprofLoader
    from tensorboard.backend.application import TensorBoardWSGI
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(logdir)))
    client = Client(TensorBoardWSGI([plugin]))
    rng = random.Random(0)
    cold: dict[str, float] = {}
    warm: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}

    def call(route: str, params: dict) -> float:
        t0 = time.perf_counter()
        r = client.get(f"/data/plugin/gprof/{route}", query_string=params)
        dt = time.perf_counter() - t0
        assert r.status_code == 200, (route, params, r.get_data(as_text=True)[:300])
        sizes[route] = max(sizes.get(route, 0), len(r.get_data()))
        return dt

    for route, variants in _requests(nodes, rng).items():
        cold[route] = call(route, variants[0])
    call("ops", {"run": RUN, "group": "op_shape"})  # starts the op + input shape table in the background
    t0 = time.perf_counter()
    while not plugin.cache.idle():  # background tables: they compete for the GIL with requests
        time.sleep(0.1)
    print(f"(background tables finished {time.perf_counter() - t0:.1f} s after the cold calls; "
          "warm rounds start after them)")
    for _ in range(rounds):  # interleaved: each round visits every route with fresh parameters
        for route, variants in _requests(nodes, rng).items():
            params = rng.choice(variants)
            warm.setdefault(route, []).append(call(route, params))
    return {route: {"cold_ms": cold[route] * 1e3, "p50_ms": statistics.median(ts) * 1e3,
                    "p95_ms": _pct(ts, 0.95) * 1e3, "max_ms": max(ts) * 1e3, "n": len(ts),
                    "max_response_bytes": sizes[route]} for route, ts in warm.items()}


#: ms from the frame's navigation start to its first JSON request (``runs``): the tab's first request
_FIRST_REQUEST_JS = """() => Math.min(...performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/data/plugin/gprof/') && !e.name.includes('/static/')).map((e) => e.startTime))"""


def _landing(page: Any, url: str, received: list[int], label: str, out: dict[str, float]) -> Any:
    """Open the tab with no saved state (it lands on the overview) and record when the overview painted."""
    from tb_browser_helpers import open_tab

    received.clear()
    frame = open_tab(page, url, timeout_ms=180_000)
    painted = float(frame.evaluate("document.body.dataset.paintedAt"))
    out[f"{label}: tab load to overview painted (s)"] = painted / 1e3
    out[f"{label}: first request to overview painted (s)"] = (painted - float(frame.evaluate(_FIRST_REQUEST_JS))) / 1e3
    out[f"{label}: findings drawn"] = frame.locator("#findings .card.finding").count()
    out[f"{label}: JSON bytes received"] = sum(received)
    return frame


def bench_browser(logdir: Path, wait_s: float = 20.0) -> dict[str, float]:
    """The landing overview's first paint and then the collapsed graph's, on a fresh server opened at once
    (cold) and one opened ``wait_s`` after its plugins listing (the newest step is prewarmed meanwhile),
    each followed by a second visit to the same, now warm, server."""
    import sys
    import urllib.request

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the browser helpers live with the tests
    from tb_browser_helpers import chromium_page, tensorboard

    out: dict[str, float] = {}
    for scenario in ("cold", f"after_{wait_s:.0f}s"):
        with tensorboard(logdir) as url, chromium_page() as (page, _):
            if scenario != "cold":
                urllib.request.urlopen(url + "/data/plugins_listing", timeout=60).read()
                time.sleep(wait_s)
            received: list[int] = []

            def on_response(r: Any, received: list[int] = received) -> None:
                if "/data/plugin/gprof/" in r.url and "/static/" not in r.url:
                    received.append(len(r.body()))
            page.on("response", on_response)
            frame = _landing(page, url, received, scenario, out)
            t0 = time.perf_counter()
            frame.click("button.tab[data-tab='graph']")
            frame.wait_for_selector("g.node", timeout=180_000)
            out[f"{scenario}: graph tab click to graph painted (s)"] = time.perf_counter() - t0
            out[f"{scenario}: graph layout (ms)"] = float(frame.evaluate("document.body.dataset.graphMs"))
            out[f"{scenario}: graph boxes drawn"] = frame.locator("g.node").count()
            _landing(page, url, received, f"{scenario}, second visit", out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/gprof-bench", help="where the synthetic run is written (reused)")
    ap.add_argument("--rounds", type=int, default=30, help="interleaved rounds of warm requests")
    ap.add_argument("--no-browser", action="store_true", help="skip the headless Chromium measurement")
    args = ap.parse_args()
    logdir = Path(args.workdir)
    files = [plugin_dir(logdir, RUN) / step_filename(s) for s in (0, 1)]
    t0 = time.perf_counter()
    counts = {}
    for step, f in zip((0, 1), files):
        if not f.exists():
            counts[step] = write_step(f, step, microbatches=17 if step == 0 else 35)
    if counts:
        print(f"wrote synthetic steps {counts} in {time.perf_counter() - t0:.1f} s")
    from gprof.store import StepReader

    with StepReader(files[1]) as r:
        nodes, nedges = r.count(), r.sql("SELECT COUNT(*) FROM edges")[0][0]
    print(f"step 1: {nodes:,} nodes, {nedges:,} edges, file {files[1].stat().st_size / 2**20:.0f} MiB")
    print("\nJSON routes, in-process (ms): cold = first call on an empty cache; p50/p95 over interleaved rounds")
    print(f"{'route':<12}{'cold':>10}{'p50':>9}{'p95':>9}{'max':>9}{'n':>5}{'max resp':>12}")
    results = bench_routes(logdir, nodes, args.rounds)
    for route, r in results.items():
        print(f"{route:<12}{r['cold_ms']:>10.1f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['max_ms']:>9.1f}{r['n']:>5}"
              f"{r['max_response_bytes']:>12,}")
    worst = max(results.items(), key=lambda kv: kv[1]["p95_ms"])
    print(f"worst warm p95: {worst[0]} {worst[1]['p95_ms']:.1f} ms (limit 200 ms): "
          f"{'PASS' if worst[1]['p95_ms'] <= 200 else 'FAIL'}")
    if not args.no_browser:
        b = bench_browser(logdir)
        print("\nheadless Chromium, real tensorboard: the landing overview, then the collapsed graph "
              "(tab load = from the plugin iframe's start):")
        for k, v in b.items():
            print(f"  {k:<60} {v:,.2f}" if isinstance(v, float) else f"  {k:<60} {v:,}")
        print(f"the browser received at most {max(v for k, v in b.items() if 'bytes' in k):,} JSON bytes "
              f"for a {nodes:,}-node step")


if __name__ == "__main__":
    main()
