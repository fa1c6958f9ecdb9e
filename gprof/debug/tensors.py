"""Read-only tensor facts for a pause: stats, non-finite counts and a small slice preview.

Everything here reads tensors and never writes them (results after continuing must be
bit-identical), and runs inside ``__torch_dispatch__``, where the recorder is off the mode stack,
so these ops are not recorded.
"""
from __future__ import annotations

from typing import Any

import torch

PREVIEW_ITEMS = 8


def iter_tensors(value: Any) -> list[torch.Tensor]:
    """The tensors of an op's args or output, flattened one level (lists of tensors included)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        out: list[torch.Tensor] = []
        for v in value:
            if isinstance(v, torch.Tensor):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                out.extend(t for t in v if isinstance(t, torch.Tensor))
        return out
    if isinstance(value, dict):
        return iter_tensors(list(value.values()))
    return []


def _float_view(t: torch.Tensor) -> torch.Tensor:
    d = t.detach()
    return (torch.view_as_real(d) if d.is_complex() else d).to(torch.float64)


def nonfinite_kinds(t: torch.Tensor) -> tuple[bool, bool]:
    """(has NaN, has +-Inf); integer tensors are always finite."""
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0 or t.is_meta:
        return False, False
    d = t.detach()
    return bool(torch.isnan(d).any()), bool(torch.isinf(d).any())


def summarize(t: torch.Tensor, name: str) -> dict[str, Any]:
    """Shape, dtype, min/max/mean/std (over finite values), NaN/Inf counts and a preview."""
    info: dict[str, Any] = {
        "name": name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "device": str(t.device),
        "numel": t.numel(), "nan": 0, "inf": 0, "min": None, "max": None, "mean": None, "std": None, "preview": "",
    }
    if t.is_meta or t.numel() == 0:
        return info
    flat = _float_view(t).reshape(-1)
    if t.is_floating_point() or t.is_complex():
        info["nan"] = int(torch.isnan(flat).sum())
        info["inf"] = int(torch.isinf(flat).sum())
        finite = flat[torch.isfinite(flat)]
    else:
        finite = flat
    if finite.numel():
        info["min"] = float(finite.min())
        info["max"] = float(finite.max())
        info["mean"] = float(finite.mean())
        info["std"] = float(finite.std()) if finite.numel() > 1 else 0.0
    head = flat[:PREVIEW_ITEMS].tolist()
    info["preview"] = "[" + ", ".join(f"{v:.4g}" for v in head) + (", ...]" if flat.numel() > PREVIEW_ITEMS else "]")
    return info


def absmax(t: torch.Tensor) -> float:
    """The largest absolute *finite* value (0 when there is none): a ``-inf`` attention mask or a
    NaN is not a large value; ``inf`` and ``nan`` are conditions of their own."""
    if t.numel() == 0 or t.is_meta:
        return 0.0
    a = _float_view(t).abs()
    if t.is_floating_point() or t.is_complex():
        a = a[torch.isfinite(a)]
    return float(a.max()) if a.numel() else 0.0
