"""Datasheet figures of common GPUs, for predictions re-targeted to a GPU the step did not run on.

No torch import: readers of a stored run (report, TUI, TensorBoard) select a GPU by name. Figures are
the vendors' datasheet numbers for the SXM/PCIe part named (dense, no sparsity):

- A100 80GB SXM: NVIDIA A100 Tensor Core GPU datasheet (2,039 GB/s; BF16 312 TFLOPS; 108 SMs, sm_80)
- H100 SXM: NVIDIA H100 Tensor Core GPU datasheet (3.35 TB/s; BF16 989 TFLOPS; 132 SMs, sm_90)
- H200 SXM: NVIDIA H200 Tensor Core GPU datasheet (4.8 TB/s; BF16 989 TFLOPS; 132 SMs, sm_90)
- B200: NVIDIA DGX B200 / Blackwell datasheet (8 TB/s; BF16 2.25 PFLOPS per GPU; 148 SMs, sm_100)
- L4: NVIDIA L4 Tensor Core GPU datasheet (300 GB/s; BF16 121 TFLOPS; 58 SMs, sm_89)
- L40S: NVIDIA L40S datasheet (864 GB/s; BF16 362 TFLOPS; 142 SMs, sm_89)
- RTX 4090: NVIDIA Ada Lovelace architecture whitepaper, GeForce RTX 4090 (1,008 GB/s; FP16/BF16 tensor with
  FP32 accumulate 165 TFLOPS; 128 SMs, sm_89)
- V100 SXM2: NVIDIA V100 datasheet (900 GB/s; FP16 125 TFLOPS; 80 SMs, sm_70)
- T4: NVIDIA T4 datasheet (320 GB/s; FP16 65 TFLOPS; 40 SMs, sm_75)

``launch_ns`` is not a datasheet figure: it is the host-side cost of one kernel launch from PyTorch's
wrapper (about 5 us for a Triton launch through Inductor's ``CachingAutotuner.run``, 4 us for an ATen
launch), an assumption the same on every GPU until ``benchmarks/gpu_check.py`` measures it on a lent one.
A step recorded on a GPU uses the calibrated figures of :mod:`gprof.analyses.roofline` instead.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuSpec:
    name: str
    bandwidth_bps: float
    #: dense BF16/FP16 tensor-core peak
    peak_flops: float
    #: dense FP32 (non-tensor-core) peak
    peak_fp32_flops: float
    sm_count: int
    compute_major: int
    launch_ns: float = 5_000.0
    #: Inductor's Triton scheduler run on CPU tensors (the check in ``benchmarks/fusion_vs_inductor.py``),
    #: so that lowerings take their CPU branches (``cat`` is always a ``ConcatKernel``)
    cpu_tensors: bool = False

    def bytes_ns(self, nbytes: int) -> float:
        return nbytes / self.bandwidth_bps * 1e9


_T = 1e12
GPUS: dict[str, GpuSpec] = {g.name: g for g in (
    GpuSpec("A100", 2.039e12, 312 * _T, 19.5 * _T, 108, 8),
    GpuSpec("H100", 3.35e12, 989 * _T, 67 * _T, 132, 9),
    GpuSpec("H200", 4.8e12, 989 * _T, 67 * _T, 132, 9),
    GpuSpec("B200", 8.0e12, 2250 * _T, 75 * _T, 148, 10),
    GpuSpec("L4", 0.3e12, 121 * _T, 30.3 * _T, 58, 8),
    GpuSpec("L40S", 0.864e12, 362 * _T, 91.6 * _T, 142, 8),
    GpuSpec("RTX 4090", 1.008e12, 165 * _T, 82.6 * _T, 128, 8),
    GpuSpec("V100", 0.9e12, 125 * _T, 15.7 * _T, 80, 7),
    GpuSpec("T4", 0.32e12, 65 * _T, 8.1 * _T, 40, 7),
)}
#: the GPU a CUDA prediction assumes when none is named
DEFAULT_GPU = "H100"


def gpu_spec(name: str | GpuSpec | None = None) -> GpuSpec:
    """The spec of ``name`` (a spec is returned as it is) (case, spaces and dashes ignored; a device name such as "NVIDIA H100 80GB
    HBM3" finds "H100"); ``None`` is :data:`DEFAULT_GPU`. Raises ``KeyError`` naming the known GPUs."""
    def key(s: str) -> str:
        return s.lower().replace(" ", "").replace("-", "").replace("_", "")

    if isinstance(name, GpuSpec):
        return name
    want = key(name or DEFAULT_GPU)
    exact = [g for n, g in GPUS.items() if key(n) == want]
    if exact:
        return exact[0]
    found = sorted((g for n, g in GPUS.items() if key(n) in want), key=lambda g: -len(g.name))
    if found:
        return found[0]
    raise KeyError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")
