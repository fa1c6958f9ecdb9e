"""Time to first screen of ``torch-gprof tui`` on a 1,000,000-node step.

The step is written with ``gprof.store.StepWriter`` directly (a synthetic 48-layer model: each
layer's forward, backward and optimizer ops), then the real Textual app is started headless
(``App.run_test``) and timed until the module tree and the first node page are on screen.
Repeats are medians; the parts (SQL aggregation, first page) are timed on their own too.

    python benchmarks/tui_load.py [--nodes 1000000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from gprof_tui.stepdata import NodeQuery, StepData

from gprof.graph.model import MemorySummary, ModuleInfo, StepMeta
from gprof.store import StepWriter, open_run, plugin_dir, step_filename

SUBMODULES = ("attn.q", "attn.k", "attn.v", "attn.out", "mlp.fc1", "mlp.fc2", "norm1", "norm2")
OPS = ("aten.addmm.default", "aten.view.default", "aten.gelu.default", "aten.add.Tensor", "aten.mul.Tensor",
       "aten.native_layer_norm.default", "aten.t.default", "aten.mm.default")


def build_step(logdir: Path, nodes: int, layers: int = 48) -> Path:
    path = plugin_dir(logdir, "big") / step_filename(0)
    w = StepWriter(path)
    phases = ("forward", "backward", "optimizer")
    chunk: list[tuple] = []
    live = 0
    counters: dict[tuple, int] = {}
    t = "float32|cpu|64,1024|262144|{}"
    for i in range(nodes):
        phase = phases[min(2, i * 3 // nodes)]
        mod = f"layers.{(i // 97) % layers}.{SUBMODULES[(i // 13) % len(SUBMODULES)]}"
        op = OPS[i % len(OPS)]
        k = (mod, phase, op)
        n = counters.get(k, 0)
        counters[k] = n + 1
        live += 262144 if i % 3 else -262144
        chunk.append((i, f"{mod}:{phase}:{op}#{n}", op, phase, mod, t.format(i), t.format(i + 1), i * 1000, 500 + i % 700,
                      None, 262144 if i % 3 else 0, 0, 10_000_000 + live, 1000, "train.py:10 in forward", 0,
                      None, None, None, None))
        if len(chunk) == 50_000:
            w.add_node_rows(chunk)
            w.add_edges((j - 1, j, j, 262144) for j in range(max(1, chunk[0][0]), chunk[-1][0] + 1))
            chunk = []
    if chunk:
        w.add_node_rows(chunk)
    w.set_modules([ModuleInfo(f"layers.{i}", "Block") for i in range(layers)])
    w.commit(StepMeta(run="big", step=0, node_count=nodes), MemorySummary(peak_bytes=10_000_000 + live, peak_node=0))
    return logdir / "big"


async def first_screen(run_dir: Path) -> tuple[float, float, float]:
    """Seconds from starting the app to (the first node page and the module tree drawn, the
    module tree's time and memory totals drawn), and the CPU seconds this process used until the
    first screen (all threads): a figure a loaded machine inflates much less than wall time."""
    from gprof_tui.browse import BrowseApp
    from textual.widgets import DataTable, Tree

    t0 = time.perf_counter()
    c0 = time.process_time()
    app = BrowseApp(str(run_dir))
    async with app.run_test(size=(160, 50)) as pilot:
        while True:
            screen = app.screen
            try:
                table = screen.query_one("#nodes", DataTable)
                tree = screen.query_one("#modules", Tree)
            except Exception:  # the browse screen is not mounted yet
                table = tree = None
            if table is not None and table.row_count and tree is not None and tree.root.children:
                break
            await pilot.pause(0.01)
        await pilot.pause()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        while not screen.modules_ready:
            await pilot.pause(0.02)
        await pilot.pause()
        totals = time.perf_counter() - t0
    return elapsed, totals, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", type=Path, help="build the step in this directory, or reuse the one already there")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        logdir = a.keep or Path(d)
        run_dir = logdir / "big"
        if not (a.keep and (run_dir / "plugins" / "gprof" / step_filename(0)).is_file()):
            t0 = time.perf_counter()
            run_dir = build_step(logdir, a.nodes)
            print(f"built a {a.nodes:,}-node step with StepWriter in {time.perf_counter() - t0:.1f} s")
        data = StepData(open_run(run_dir))
        size = data.path.stat().st_size
        print(f"step: {data.count():,} nodes, {size / 2**20:.0f} MiB on disk; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")
        data.close()

        screens, totals, cpus, modules, pages, sorted_pages, filtered = [], [], [], [], [], [], []
        for _ in range(a.repeats):
            first, full, cpu = asyncio.run(first_screen(run_dir))
            screens.append(first)
            totals.append(full)
            cpus.append(cpu)
            data = StepData(open_run(run_dir))
            for times, query in ((modules, lambda d: d.modules()),
                                 (pages, lambda d: d.page_rows(NodeQuery())),
                                 (sorted_pages, lambda d: d.page_rows(NodeQuery(sort="time", descending=True))),
                                 (filtered, lambda d: d.page_rows(NodeQuery(text="gelu", module="layers.7")))):
                t = time.perf_counter()
                query(data)
                times.append(time.perf_counter() - t)
            data.close()
        med = statistics.median
        print(f"time to first screen (app start -> module tree + first node page drawn), median of {a.repeats}: "
              f"{med(screens):.2f} s  (runs: {', '.join(f'{s:.2f}' for s in screens)})  target <= 3 s: "
              f"{'PASS' if med(screens) <= 3 else 'FAIL'}")
        print(f"  CPU time until the first screen (all threads): {med(cpus):.2f} s")
        print(f"  module tree totals drawn (background worker), from app start: {med(totals):.2f} s")
        print(f"  module tree aggregation (SQL GROUP BY): {med(modules) * 1e3:.0f} ms")
        print(f"  first node page (200 rows):             {med(pages) * 1e3:.1f} ms")
        print(f"  page sorted by time (no index):         {med(sorted_pages) * 1e3:.0f} ms")
        print(f"  filtered page ('gelu' in layers.7):     {med(filtered) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
