"""Roofline figures for the fusion estimates: memory bandwidth and per-kernel launch cost.

Measured once per device (a large copy for bandwidth, a one-element add for the launch cost) and
cached as JSON under ``$XDG_CACHE_HOME/torch-gprof/`` (default ``~/.cache/torch-gprof/``), so the
per-step analyses never pay for it twice. On CUDA the copy and the add run on that device.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Roofline:
    device: str
    #: bytes per second moved by a large device-to-device copy (read + write counted)
    bandwidth_bps: float
    #: nanoseconds of a kernel that does no work (dispatch + launch)
    launch_ns: float
    torch_version: str

    def bytes_ns(self, nbytes: int) -> float:
        return nbytes * 1e9 / self.bandwidth_bps


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "torch-gprof"


class Backend(Protocol):
    """The torch side of the calibration (``gprof.analyses.torch_ops``)."""

    def device_id(self, device: str) -> str: ...
    def measure(self, device: str) -> tuple[float, float]: ...
    def torch_version(self) -> str: ...


#: installed by ``gprof.analyses.use_torch``: measuring needs torch, reading this module does not
_backend: Backend | None = None


def set_backend(backend: Backend) -> None:
    global _backend
    _backend = backend


def _torch() -> Backend:
    if _backend is None:
        raise RuntimeError("the roofline calibration needs torch: call gprof.analyses.use_torch() first (run_all does)")
    return _backend


def measure(device: str = "cpu") -> Roofline:
    """Run the calibration now (well under a second on CPU)."""
    t = _torch()
    bandwidth, launch = t.measure(device)
    return Roofline(t.device_id(device), bandwidth, launch, t.torch_version())


def load_or_measure(device: str = "cpu") -> Roofline:
    """The cached figures for ``device``, measuring and caching them on first use."""
    t = _torch()
    path = cache_dir() / f"roofline-{t.device_id(device)}.json"
    try:
        data = json.loads(path.read_text())
        if data.get("torch_version") == t.torch_version():
            return Roofline(**data)
    except (OSError, ValueError, TypeError):
        pass
    r = measure(device)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(r), indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home still gets the figures, just not cached
    return r


_memo: dict[str, Roofline] = {}
#: figures a stored step measured, per device, for analyses re-run on it (``stored_figures``)
_stored: ContextVar[dict[str, Roofline] | None] = ContextVar("gprof_stored_rooflines", default=None)


@contextmanager
def stored_figures(figures: dict[str, Roofline]) -> Iterator[None]:
    """Price with ``figures`` (device -> the step's measured roofline) inside the block: a reader
    re-running the fusion analysis on a stored step uses what the step's machine measured, not this
    machine, and needs no torch. A context variable, so threads serving other steps are not affected."""
    token = _stored.set(figures)
    try:
        yield
    finally:
        _stored.reset(token)


def roofline_for(device: str) -> Roofline:
    stored = _stored.get()
    if stored is not None and device in stored:
        return stored[device]
    r = _memo.get(device)
    if r is None:
        r = _memo[device] = load_or_measure(device)
    return r
