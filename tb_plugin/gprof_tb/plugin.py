"""The gprof TensorBoard plugin: JSON routes over step files, plus the static frontend.

Every route reads through the store's read layer (``gprof.store.queries``), mostly via the cached
aggregates in :mod:`gprof_tb.stepdata`.
Bad input (unknown run, rank or step, traversal attempts, malformed numbers, unreadable files)
becomes a plain-text 4xx through TensorBoard's ``errors`` classes, never a 5xx; one bad file never
stops the others from being served.
"""
from __future__ import annotations

import functools
import json
import mimetypes
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tensorboard import errors
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from gprof.analyses.gpu_specs import GPUS
from gprof.analyses.runner import TARGETS
from gprof.graph.model import PHASES
from gprof.store import PLUGIN_NAME, Run, StepFile, StoreError, find_runs
from gprof.store.queries import run_listing
from gprof.store.queries.retarget import NeedsTorchError
from gprof.store.runs import UnknownRunError
from gprof_tb.graphview import collapsed_graph
from gprof_tb.nodeview import node_detail
from gprof_tb.params import choice_param, fusion_target, int_param, text_param
from gprof_tb.routes_insight import INSIGHT_ROUTES
from gprof_tb.stepdata import StepCache, StepData

STATIC_DIR = Path(__file__).parent / "static"
_RUNS_TTL_S = 2.0


class UnreadableStepError(errors.PublicError):
    """A step file exists but cannot be read (truncated, corrupt, another schema version)."""

    http_code = 422


class CannotRetargetError(errors.PublicError):
    """The step file lacks what re-targeting its analyses without torch needs (``NeedsTorchError``:
    written before op facts were stored); the tab's process never imports torch to make up for it."""

    http_code = 422


def _static_files() -> dict[str, Path]:
    """Served files by URL path; a fixed table, so no request path ever reaches the filesystem."""
    return {p.relative_to(STATIC_DIR).as_posix(): p for p in STATIC_DIR.rglob("*") if p.is_file()}


def _route(fn: Callable[[GprofPlugin, wrappers.Request], Any]) -> Callable[..., Any]:
    """JSON route: the handler returns a JSON-able value; store errors become readable 4xx."""

    @functools.wraps(fn)
    def respond(self: GprofPlugin, request: wrappers.Request) -> wrappers.Response:
        try:
            body = fn(self, request)
        except UnknownRunError as e:
            raise errors.NotFoundError(str(e)) from None
        except StoreError as e:
            raise UnreadableStepError(str(e)) from None
        except NeedsTorchError as e:
            raise CannotRetargetError(f"cannot re-target this step's analyses in the tab: {e}") from None
        except FileNotFoundError as e:
            raise errors.NotFoundError(f"file vanished while reading it: {e.filename}; reload the page") from None
        text = body.text if isinstance(body, EncodedJSON) else _encode(body)
        return http_util.Respond(request, text, "application/json")

    return _application(respond)


def _application(fn: Callable[[GprofPlugin, wrappers.Request], wrappers.Response]) -> Callable[..., Any]:
    """werkzeug's ``Request.application`` for a method. Its stubs type only plain functions of a request,
    so a bound route would not type-check; at run time it takes the request as the last argument."""
    return wrappers.Request.application(fn)  # type: ignore[arg-type]


def _encode(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


class EncodedJSON:
    """A response body encoded once and cached: the module table of a 6,000-module model is ~2 MB."""

    __slots__ = ("text",)

    def __init__(self, body: Any) -> None:
        self.text = _encode(body)


class GprofPlugin(base_plugin.TBPlugin):
    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self.logdir = context.logdir or ""
        self.cache = StepCache()
        self._static = _static_files()
        self._runs: dict[str, Run] = {}
        self._runs_at = float("-inf")
        self._runs_lock = threading.Lock()

    # ------------------------------------------------------------------ TensorBoard hooks
    def get_plugin_apps(self) -> dict[str, Callable]:
        return {
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/step": self._serve_step,
            "/graph": self._serve_graph,
            "/node": self._serve_node,
            "/ops": self._serve_ops,
            "/modules": self._serve_modules,
            "/memory": self._serve_memory,
            "/analyses": self._serve_analyses,
            "/kineto": self._serve_kineto,
            **{path: functools.partial(_route(fn), self) for path, fn in INSIGHT_ROUTES.items()},
        }

    def is_active(self) -> bool:
        return bool(self.runs())

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/static/index.js", tab_name="Graph profile",
                                            disable_reload=True)

    # ------------------------------------------------------------------ lookups
    def runs(self) -> dict[str, Run]:
        """The logdir's runs, rescanned at most every couple of seconds (is_active runs per listing)."""
        with self._runs_lock:
            if time.monotonic() - self._runs_at > _RUNS_TTL_S:
                runs = find_runs(self.logdir) if self.logdir else {}
                fresh = set(runs) - set(self._runs)
                self._runs, self._runs_at = runs, time.monotonic()
                for name in fresh:
                    self._prewarm(runs[name])
            return self._runs

    def _prewarm(self, run: Run) -> None:
        """Start the newest step's first-view aggregates in the background as soon as a run appears."""
        try:
            self.cache.get(run.file().path).prewarm()
        except (StoreError, OSError):
            pass  # no readable step yet; requests report why

    def run_of(self, request: wrappers.Request) -> Run:
        name = text_param(request, "run")
        if not name:
            raise errors.InvalidArgumentError("missing parameter 'run'; GET ./runs lists them")
        run = self.runs().get(name)
        if run is None:
            raise errors.NotFoundError(f"unknown run {name[:200]!r}; GET ./runs lists the runs under the logdir")
        return run

    def file_of(self, request: wrappers.Request, step_param: str = "step") -> tuple[Run, StepFile]:
        run = self.run_of(request)
        step, rank = int_param(request, step_param), int_param(request, "rank")
        try:
            return run, run.file(step, rank)
        except StoreError as e:  # no such step/rank: the run exists, the coordinates do not
            raise errors.NotFoundError(str(e)) from None

    def data_of(self, request: wrappers.Request, step_param: str = "step") -> StepData:
        _, f = self.file_of(request, step_param)
        return self.cache.get(f.path)

    # ------------------------------------------------------------------ routes
    @_application
    def _serve_static(self, request: wrappers.Request) -> wrappers.Response:
        rel = request.path.split("/static/", 1)[-1]
        path = self._static.get(rel)
        if path is None:
            raise errors.NotFoundError(f"no static file {rel[:200]!r}")
        mime = "text/javascript" if rel.endswith(".js") else mimetypes.guess_type(rel)[0] or "text/plain"
        return http_util.Respond(request, path.read_bytes(), mime)

    @_route
    def _serve_runs(self, request: wrappers.Request) -> Any:
        """Every run with its steps and ranks; files that cannot be read are flagged under
        ``unreadable`` (step, rank, error; the key only where there are some), and their runs are
        listed all the same."""
        out = []
        for name, run in self.runs().items():
            files = run.files()
            bad = [{"step": f.step, "rank": f.rank, "error": err}
                   for f, err in zip(files, map(self.cache.problem, (f.path for f in files))) if err]
            out.append({**run_listing(run), "run": name, **({"unreadable": bad} if bad else {})})
        return out

    @_route
    def _serve_step(self, request: wrappers.Request) -> Any:
        run, f = self.file_of(request)
        data = self.cache.get(f.path)
        summary = data.headline()
        kineto = summary.get("kineto_trace")
        summary["kineto_url"] = (f"kineto?run={_quote(run.name)}&step={f.step}&rank={f.rank}"
                                 if isinstance(kineto, str) and _kineto_path(run, kineto) else None)
        summary["run"] = run.name
        fusion = data.analyses().get("fusion")
        summary["fusion_targets"] = {"recorded": fusion.get("target") if isinstance(fusion, dict) else None,
                                     "retargetable": data.retargetable(), "targets": list(TARGETS),
                                     "gpus": list(GPUS)}
        return summary

    @_route
    def _serve_graph(self, request: wrappers.Request) -> Any:
        data = self.data_of(request)
        expanded = {m for m in (text_param(request, "expanded", "") or "").split(",") if m}
        phases = {p for p in (text_param(request, "phases", "forward") or "forward").split(",") if p}
        unknown = phases - set(PHASES)
        if unknown or not phases:
            raise errors.InvalidArgumentError(f"'phases' takes a comma list of {', '.join(PHASES)}; got {sorted(unknown)}")
        limit = int_param(request, "limit", 150, lo=1, hi=1000) or 150
        return collapsed_graph(data, expanded, phases, limit=limit, target=fusion_target(request))

    @_route
    def _serve_node(self, request: wrappers.Request) -> Any:
        data = self.data_of(request)
        idx = int_param(request, "idx")
        key = text_param(request, "key")
        if idx is None and key:
            idx = data.node_idx(key)
            if idx is None:
                raise errors.NotFoundError(f"no node with key {key[:200]!r} in this step")
        if idx is None:
            raise errors.InvalidArgumentError("give 'idx' (a node index) or 'key' (a stable node key)")
        detail = node_detail(data, idx, fusion_target(request))
        if detail is None:
            raise errors.NotFoundError(f"no node {idx} in this step ({data.reader.count()} nodes)")
        return detail

    @_route
    def _serve_ops(self, request: wrappers.Request) -> Any:
        data = self.data_of(request)
        group = choice_param(request, "group", ("op", "op_shape", "module"), "op")
        sort = choice_param(request, "sort", _OP_SORTS, "host_self_ns")
        desc = choice_param(request, "order", ("desc", "asc"), "desc") == "desc"
        limit = int_param(request, "limit", 500, lo=1, hi=5000)
        rows = data.op_table(group)
        if rows is None:
            return {"group": group, "pending": True, "total": 0, "rows": [],
                    "message": f"computing the op + input shape table for {data.reader.meta.node_count:,} nodes"}
        ordered = sorted(rows, key=lambda r: _sort_key(r.get(sort)), reverse=desc)
        return {"group": group, "sort": sort, "order": "desc" if desc else "asc", "total": len(rows),
                "rows": ordered[:limit]}

    @_route
    def _serve_modules(self, request: wrappers.Request) -> Any:
        data = self.data_of(request)
        return data.memo("modules_json", lambda: EncodedJSON(
            [{**m, "type": data.module_types().get(m["module"], "")} for m in data.modules()]))

    @_route
    def _serve_memory(self, request: wrappers.Request) -> Any:
        data = self.data_of(request)
        return data.memory_curve(int_param(request, "points", 1000, lo=10, hi=5000) or 1000)

    @_route
    def _serve_analyses(self, request: wrappers.Request) -> Any:
        data = self.data_of(request)
        target = fusion_target(request)
        return data.memo(("analyses_json", target), lambda: EncodedJSON(data.analyses_view(target)))

    @_application
    def _serve_kineto(self, request: wrappers.Request) -> wrappers.Response:
        run, f = self.file_of(request)
        try:
            name = self.cache.get(f.path).reader.meta.extra.get("kineto_trace")
        except StoreError as e:
            raise UnreadableStepError(str(e)) from None
        path = _kineto_path(run, name)
        if path is None:
            raise errors.NotFoundError(f"step {f.step} of run {run.name!r} has no Kineto trace; "
                                       "record with gprof.profile(..., with_kineto=True)")
        return http_util.Respond(request, path.read_bytes(), "application/json")


_OP_SORTS = ("op", "module", "input_shapes", "calls", "host_self_ns", "host_total_ns", "device_self_ns",
             "device_total_ns", "mean_ns", "min_ns", "max_ns", "alloc_bytes", "flops")


def _sort_key(v: Any) -> tuple:
    """Numbers before text, None last, so mixed columns sort without TypeError."""
    if v is None:
        return (0, 0, "")
    if isinstance(v, (int, float)):
        return (1, v, "")
    return (2, 0, str(v))


def _kineto_path(run: Run, name: Any) -> Path | None:
    """The Kineto trace a step names, only if it is a plain file name inside the run directory and
    stays there once links are followed (a symlink planted in the run may point anywhere)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = run.path / name
    try:
        inside = path.resolve().is_relative_to(run.path.resolve())
    except (OSError, RuntimeError):  # a link loop
        return None
    return path if inside and path.is_file() else None


def _quote(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")
