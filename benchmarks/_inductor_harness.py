"""Running Inductor for the fusion benchmark (benchmarks/fusion_vs_inductor.py): its scheduler set up for a
target, and the tensor reads replayed so that a harness whose kernels never run takes eager's branches."""
from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def scheduler_for(target: str) -> Iterator[tuple[type, str]]:
    """Inductor set up to schedule for ``target``; yields (the backend's scheduling class, the launch
    pattern of its generated kernels in the output code). ``cuda`` runs the Triton scheduler on CPU tensors
    (``config.cpu_backend = "triton"``) with the three Triton driver calls stood in for, as
    ``../shared/notes/inductor-triton-on-cpu.md`` describes: the kernels are generated, never compiled or
    run, so outputs are garbage and only the code's structure is compared. With a CUDA device
    (``benchmarks/gpu_check.py``) nothing is stood in for: the model runs on it."""
    import torch._inductor.config as inductor_config

    if target == "cuda" and torch.cuda.is_available():
        from torch._inductor.codegen.triton import TritonScheduling

        with inductor_config.patch(force_disable_caches=True):
            yield TritonScheduling, r"^\s+(triton_\w+)\.run\("
        return
    if target == "cpu":
        from torch._inductor.codegen.cpp import CppScheduling

        with inductor_config.patch(force_disable_caches=True):
            yield CppScheduling, r"^\s+(cpp_fused\w*)\("
        return
    import torch.utils._triton as triton_utils
    from torch._inductor.async_compile import AsyncCompile
    from torch._inductor.codegen.triton import TritonScheduling

    class NotRun:
        def run(self, *args: Any, **kwargs: Any) -> None:
            pass

    with inductor_config.patch(force_disable_caches=True, cpu_backend="triton", compile_threads=1), \
            mock.patch.object(triton_utils, "triton_hash_with_backend", lambda: "NO-DRIVER"), \
            mock.patch.object(triton_utils, "triton_backend", lambda: None), \
            mock.patch.object(AsyncCompile, "triton", lambda self, kernel_name, source_code, *a, **k: NotRun()):
        yield TritonScheduling, r"^\s+(triton_\w+)\.run\("


@contextlib.contextmanager
def replayed_scalars(model: torch.nn.Module, batch: Any) -> Iterator[None]:
    """Python reads of tensor values (``.item()``, ``bool(t)``) return what an eager run of the same
    model and batch read, in order, and a boolean mask indexing a tensor (``h[keep]``) is the mask eager
    used there. The Triton harness never runs a kernel, so a model that branches on values (the dynamic
    example: ``.item()`` picks the number of passes, ``bool(keep.any())`` the gather) would otherwise take
    branches eager did not; Dynamo runs these reads outside its graphs. The mask matters for shapes: the
    compiled graph's ``keep`` is uninitialised memory, so ``h[keep]`` kept an arbitrary number of rows and
    the head's graph was compiled for that many: with exactly one row, Inductor's ``addmm`` decomposition
    (``torch/_inductor/decomposition.py``: on a CPU device, ``mat1.size(0) == 1`` and ``mat2.size(-1) == 1``)
    makes the head's ``Linear(64, 1)`` generated code, an ``addmm`` kernel the eager step has no reason to
    predict (the dynamic forward's occasional Jaccard 0.77)."""
    seen: dict[tuple[str, int], list[Any]] = {}
    masks: dict[tuple[str, int], list[torch.Tensor]] = {}
    item, to_bool, getitem = torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.__getitem__
    user = str(ROOT)

    def site() -> tuple[str, int] | None:  # the user's line reading the value (not Dynamo's own reads)
        f = sys._getframe(2)
        return (f.f_code.co_filename, f.f_lineno) if f.f_code.co_filename.startswith(user) else None

    def is_mask(index: Any) -> bool:
        return isinstance(index, torch.Tensor) and index.dtype == torch.bool

    def recording(fn: Any) -> Any:
        def read(t: torch.Tensor) -> Any:
            value = fn(t)
            where = site()
            if where is not None:
                seen.setdefault(where, []).append(value)
            return value
        return read

    def replaying(fn: Any) -> Any:
        def read(t: torch.Tensor) -> Any:
            where = site()
            return seen[where].pop(0) if seen.get(where) else fn(t)
        return read

    # Dynamo inlines these while it traces: only a boolean-mask index reaches ``site()``, whose ``sys._getframe``
    # breaks the graph there, where the mask's data-dependent shape breaks it anyway
    # (``capture_dynamic_output_shape_ops`` is off); the rest of the call then runs eagerly, on the real mask

    def recording_index(t: torch.Tensor, index: Any) -> Any:
        where = site() if is_mask(index) else None
        if where is not None:
            masks.setdefault(where, []).append(index.clone())
        return getitem(t, index)

    def replaying_index(t: torch.Tensor, index: Any) -> Any:
        where = site() if is_mask(index) else None
        if where is not None and masks.get(where) and masks[where][0].shape == index.shape:
            index = masks[where].pop(0)
        return getitem(t, index)

    with mock.patch.object(torch.Tensor, "item", recording(item)), \
            mock.patch.object(torch.Tensor, "__bool__", recording(to_bool)), \
            mock.patch.object(torch.Tensor, "__getitem__", recording_index):
        copy.deepcopy(model)(*batch)
    with mock.patch.object(torch.Tensor, "item", replaying(item)), \
            mock.patch.object(torch.Tensor, "__bool__", replaying(to_bool)), \
            mock.patch.object(torch.Tensor, "__getitem__", replaying_index):
        yield
