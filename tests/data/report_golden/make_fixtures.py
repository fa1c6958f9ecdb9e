"""Regenerate the report golden: every example recorded for a few steps, its step files and report JSON.

Run it on the code whose behaviour is to be pinned, from that checkout's root (the goldens in this
folder came from the commit before the read layer moved into gprof/store, where the report was
``gprof.report.run_report``/``format_report``, cross-rank section included)::

    python tests/data/report_golden/make_fixtures.py OUTDIR

It writes OUTDIR/logdir/<example>/plugins/gprof/*.sqlite, OUTDIR/<example>.json.gz (report forms),
OUTDIR/<example>.tui.json.gz (the terminal UI's queries) and OUTDIR/tb_views.json.gz (the TensorBoard
tab's routes); copy them here.
The reports' ``path`` field is replaced by the run's name, so the golden does not depend on where
the files lie.
"""
from __future__ import annotations

import gzip
import importlib
import json
import subprocess
import sys
from pathlib import Path

STEPS = 2
SINGLE = ("mlp", "cnn", "transformer", "dynamic", "nan_example")


def record(logdir: Path) -> None:
    import torch

    import gprof

    torch.set_num_threads(1)
    for name in SINGLE:
        ex = importlib.import_module(f"examples.{name}")
        torch.manual_seed(0)
        model, opt, batches = ex.make(steps=STEPS)
        with gprof.profile(logdir=logdir, run=name) as prof:
            for batch in batches:
                ex.step(model, opt, batch)
                prof.step()
    subprocess.run([sys.executable, "examples/ddp_train.py", "--logdir", str(logdir), "--steps", str(STEPS),
                    "--no-report"], check=True)


def report_forms(run_dir: Path) -> dict[str, object]:
    """Every report form that is cheap to compute: JSON of all steps, of the last step, and the text."""
    from gprof.commands.report import format_full_report, full_report
    from gprof.store import open_run

    run = open_run(run_dir)
    out: dict[str, object] = {}
    for label, kw in (("all", {}), ("last", {"step": run.steps()[-1]}), ("rank0", {"rank": 0})):
        rep = full_report(run, **kw)
        rep["path"] = run.name
        out[label] = rep
    text = format_full_report(full_report(run, step=run.steps()[-1]))
    out["text"] = text.replace(str(run.path), run.name)
    return out


def tb_views(logdir: Path) -> dict[str, object]:
    """The TensorBoard tab's JSON routes on every run: what the read layer serves the tab."""
    import time

    from gprof_tb.loader import GprofLoader
    from tensorboard.backend.application import TensorBoardWSGI
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    plugin = GprofLoader().load(base_plugin.TBContext(logdir=str(logdir), plugin_name_to_instance={}))
    client = Client(TensorBoardWSGI([plugin]))

    def get(route: str, **params: object) -> object:
        for _ in range(600):
            r = client.get("/data/plugin/gprof/" + route, query_string=params)
            text = r.get_data(as_text=True)
            body = json.loads(text) if r.mimetype == "application/json" else text
            if not (isinstance(body, dict) and body.get("pending")):
                if route == "graph" and isinstance(body, dict):  # box and edge order follows set order
                    body["boxes"].sort(key=lambda b: b["id"])
                    body["edges"].sort(key=lambda e: (e["src"], e["dst"], e["kind"]))
                return [r.status_code, body]
            time.sleep(0.05)
        raise TimeoutError(route)

    out: dict[str, object] = {"runs": get("runs")}
    for run in sorted(p.name for p in logdir.iterdir() if p.is_dir()):
        files = sorted((logdir / run / "plugins" / "gprof").glob("*.sqlite"))
        steps = sorted({int(f.name[4:10]) for f in files})
        for step in steps:
            for rank in sorted({int(f.name.split(".rank")[1].split("-")[0]) for f in files}):
                q = {"run": run, "step": step, "rank": rank}
                node_count = get("step", **q)[1]["nodes"]
                views: dict[str, object] = {"step": get("step", **q)}
                for phases in ("forward", "forward,backward,optimizer,other"):
                    views[f"graph {phases}"] = get("graph", phases=phases, **q)
                    top = sorted({b["module"] for b in views[f"graph {phases}"][1]["boxes"] if b.get("module")})
                    views[f"graph {phases} expanded"] = get("graph", phases=phases, expanded=",".join(top), **q)
                    views[f"graph {phases} expanded limit"] = get("graph", phases=phases, expanded=",".join(top),
                                                                  limit=2, **q)
                for idx in sorted({0, 1, node_count // 3, node_count // 2, node_count - 1}):
                    views[f"node {idx}"] = get("node", idx=idx, **q)
                key = views["node 0"][1]["key"]
                views["node by key"] = get("node", key=key, **q)
                for group in ("op", "op_shape", "module"):
                    views[f"ops {group}"] = get("ops", group=group, **q)
                views["ops sorted"] = get("ops", group="op", sort="flops", order="asc", limit=5, **q)
                views["modules"] = get("modules", **q)
                for points in (10, 1000):
                    views[f"memory {points}"] = get("memory", points=points, **q)
                views["analyses"] = get("analyses", **q)
                views["diff"] = get("diff", run=run, a=steps[0], b=step, rank=rank)
                views["ranks"] = get("ranks", run=run, step=step)
                out[f"{run} step{step} rank{rank}"] = views
    return out


def tui_views(run_dir: Path) -> dict[str, object]:
    """What the terminal UI's StepData answers on the run's last step."""
    from gprof_tui.stepdata import NodeQuery, StepData

    from gprof.store import open_run

    def nodes(ns: list) -> list:
        return [[n.idx, n.key, n.op, n.module, n.phase, n.dur_ns, n.live_bytes] for n in ns]

    data = StepData(open_run(run_dir))
    try:
        out: dict[str, object] = {"count": data.count(), "module_names": data.module_names(),
                                  "modules": data.modules(), "memory": data.memory_series(),
                                  "memory 7": data.memory_series(7), "analyses": data.analyses()}
        mods = [m for m in data.module_names() if m]
        queries = [NodeQuery(), NodeQuery(sort="time", descending=True), NodeQuery(text="mm"),
                   NodeQuery(module=""), NodeQuery(offset=5, sort="alloc")]
        queries += [NodeQuery(module=m, sort="op") for m in mods[:3]]
        for q in queries:
            out[f"page {q}"] = nodes(data.page_rows(q, size=30))
        for idx in sorted({0, data.count() // 2, data.count() - 1}):
            n = data.node(idx)
            out[f"node {idx}"] = nodes([n])
            out[f"partners {idx}"] = data.backward_partners(n.fwd if n.fwd is not None else idx)
            prod, cons = data.neighbours(idx)
            out[f"neighbours {idx}"] = [prod, cons]
            out[f"brief {idx}"] = sorted(data.brief(prod + cons + [idx]).items())
    finally:
        data.close()
    return json.loads(json.dumps(out))


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    logdir = out / "logdir"
    sys.path.insert(0, str(Path.cwd()))
    if not logdir.exists():  # an existing OUTDIR/logdir is reused: only the goldens are recomputed
        record(logdir)
    for run_dir in sorted(p for p in logdir.iterdir() if p.is_dir()):
        write_golden(out / f"{run_dir.name}.json.gz", report_forms(run_dir))
        write_golden(out / f"{run_dir.name}.tui.json.gz", tui_views(run_dir))
    write_golden(out / "tb_views.json.gz", tb_views(logdir))


def write_golden(path: Path, value: object) -> None:
    """Gzipped (the tab's routes are 2.4 MB of JSON), with a fixed mtime so reruns are byte-identical."""
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
        z.write(json.dumps(value, indent=1).encode() + b"\n")


def read_golden(path: Path) -> object:
    with gzip.open(path, "rt") as f:
        return json.load(f)


if __name__ == "__main__":
    main()
