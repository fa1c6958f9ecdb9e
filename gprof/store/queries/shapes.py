"""What changed between two steps that makes ``torch.compile`` recompile: input/output shapes, dtypes
and devices of the nodes both steps have (matched by stable key), and the ops only one step has.

Node keys (``<module>:<phase>:<op>#<n>``) are stable across steps, so a key present in both steps
names the same op; comparing their tensors finds the new sequence length of ``[4,7,16] -> [4,16,16]``
that a count-only diff calls "unchanged".
"""
from __future__ import annotations

from typing import Any

from gprof.store.decode import decoding
from gprof.store.step_file import StepReader, decode_tensors


def _sig(encoded: str) -> list[tuple[tuple[int, ...], str, str]]:
    return [(t.shape, t.dtype, t.device) for t in decode_tensors(encoded)]


def _fmt(sig: list[tuple[tuple[int, ...], str, str]]) -> str:
    return ", ".join(f"{d}[{','.join(map(str, s))}]@{dev}" for s, d, dev in sig) or "-"


def tensor_changes(a: StepReader, b: StepReader, limit: int = 500) -> dict[str, Any]:
    """Nodes of both steps whose input or output tensors differ in shape, dtype or device:
    {"total", "truncated", "rows": [{key, idx (in b), op, module, phase, what, before, after}]},
    the first ``limit`` rows by node index in ``b``. Both steps are read in key order (the key
    index) and merged, so the cost is one pass over each step."""
    q = "SELECT key, idx, op, module, phase, inputs, outputs FROM nodes ORDER BY key"
    rows: list[dict[str, Any]] = []
    total = 0
    ia, ib = iter(a.sql(q)), iter(b.sql(q))
    ra, rb = next(ia, None), next(ib, None)
    with decoding(b.path, "a node's tensors"):
        while ra is not None and rb is not None:
            if ra[0] < rb[0]:
                ra = next(ia, None)
                continue
            if rb[0] < ra[0]:
                rb = next(ib, None)
                continue
            if ra[5] != rb[5] or ra[6] != rb[6]:
                sa, sb = (_sig(ra[5]), _sig(ra[6])), (_sig(rb[5]), _sig(rb[6]))
                what = [f"{side} {kind}" for side, x, y in (("input", sa[0], sb[0]), ("output", sa[1], sb[1]))
                        for kind, i in (("shape", 0), ("dtype", 1), ("device", 2))
                        if [t[i] for t in x] != [t[i] for t in y]]
                if what:
                    total += 1
                    rows.append({"key": rb[0], "idx": rb[1], "op": rb[2], "module": rb[3], "phase": rb[4],
                                 "what": ", ".join(what), "inputs_before": _fmt(sa[0]), "inputs_after": _fmt(sb[0]),
                                 "outputs_before": _fmt(sa[1]), "outputs_after": _fmt(sb[1])})
            ra, rb = next(ia, None), next(ib, None)
    rows.sort(key=lambda r: r["idx"])
    return {"total": total, "truncated": total > limit, "rows": rows[:limit]}
