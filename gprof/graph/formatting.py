"""Human formatting shared by the report, the TUI and the TensorBoard tab."""
from __future__ import annotations

_DTYPE_ABBREV = {
    "float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64",
    "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "b8",
    "complex64": "c64", "complex128": "c128",
}


def dtype_abbrev(dtype: str) -> str:
    return _DTYPE_ABBREV.get(dtype, dtype)


def fmt_bytes(n: float) -> str:
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_ns(ns: float) -> str:
    ns = float(ns)
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_flops(f: float) -> str:
    f = float(f)
    for unit in ("", "K", "M", "G", "T", "P"):
        if abs(f) < 1000 or unit == "P":
            return f"{f:.0f}" if unit == "" else f"{f:.2f}{unit}"
        f /= 1000
    raise AssertionError("unreachable")
