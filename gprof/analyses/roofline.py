"""Roofline figures for the fusion estimates: memory bandwidth and per-kernel launch cost.

Measured once per device (a large copy for bandwidth, a one-element add for the launch cost) and
cached as JSON under ``$XDG_CACHE_HOME/torch-gprof/`` (default ``~/.cache/torch-gprof/``), so the
per-step analyses never pay for it twice. On CUDA the copy and the add run on that device.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

_COPY_BYTES = 32 * 1024 * 1024
_REPEATS = 5
_LAUNCHES = 200


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


def device_id(device: str) -> str:
    """A cache key naming the hardware, so a cached figure is never reused on another machine."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"{platform.machine()}-{platform.processor() or 'cpu'}-{os.cpu_count()}cores-{torch.get_num_threads()}thr"
    return f"{dev.type}-{name}".replace("/", "_").replace(" ", "_")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(device: str = "cpu") -> Roofline:
    """Run the calibration now (well under a second on CPU)."""
    from torch.utils._python_dispatch import _disable_current_modes

    dev = torch.device(device)
    with _disable_current_modes(), torch.no_grad():
        src = torch.empty(_COPY_BYTES // 4, dtype=torch.float32, device=dev).fill_(1.0)
        dst = torch.empty_like(src)
        copies = []
        for _ in range(_REPEATS):
            _sync(dev)
            t0 = time.perf_counter_ns()
            dst.copy_(src)
            _sync(dev)
            copies.append(time.perf_counter_ns() - t0)
        one = torch.ones(1, device=dev)
        dst1 = torch.empty_like(one)
        launches = []
        for _ in range(_REPEATS):
            _sync(dev)
            t0 = time.perf_counter_ns()
            for _ in range(_LAUNCHES):
                torch.add(one, one, out=dst1)
            _sync(dev)
            launches.append((time.perf_counter_ns() - t0) / _LAUNCHES)
        launch = min(launches)
    bw = 2 * _COPY_BYTES * 1e9 / max(1, min(copies))
    return Roofline(device_id(device), bw, launch, torch.__version__)


def load_or_measure(device: str = "cpu") -> Roofline:
    """The cached figures for ``device``, measuring and caching them on first use."""
    key = device_id(device)
    path = cache_dir() / f"roofline-{key}.json"
    try:
        data = json.loads(path.read_text())
        if data.get("torch_version") == torch.__version__:
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


def roofline_for(device: str) -> Roofline:
    r = _memo.get(device)
    if r is None:
        r = _memo[device] = load_or_measure(device)
    return r
