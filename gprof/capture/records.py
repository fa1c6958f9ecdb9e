"""The raw record layout shared by the recorder (which writes records) and the builder (which reads
them), and the per-op facts both need.

The recorder appends one *plain tuple* per op laid out as :class:`RawRecord`: constructing a
NamedTuple costs a Python-level ``__new__`` per op, a tuple display costs almost nothing (measured:
benchmarks/overhead.py). :class:`RawRecord` documents the fields and gives named access off the hot
path (``RawRecord._make(rec)``); the ``RAW_*`` constants are its field indices.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch._ops import OpOverload

from gprof.analyses.torch_ops import alias_only


class RawTensor(NamedTuple):
    """A tensor an op read or wrote (recorded as a plain tuple in this order, like the record).
    ``sid`` is the storage id (negative: first allocated by this op; 0: no single storage, e.g.
    sparse or nested)."""

    sid: int
    shape: Any  # torch.Size, or () when the tensor has no one shape
    dtype: Any  # torch.dtype
    device: Any  # torch.device


class AutogradInfo(NamedTuple):
    """The autograd node a backward op runs for (a plain tuple in this order)."""

    seq: int | None  # its sequence number (None for AccumulateGrad)
    name: str | None  # its class name, e.g. "AddmmBackward0"
    param_id: int | None  # id() of the parameter an AccumulateGrad writes, if any
    leaf_sid: int | None  # storage id of that leaf tensor


class RawRecord(NamedTuple):
    """One recorded op, as the recorder appends it (a plain tuple in this field order)."""

    op: str  # the overload's name, e.g. "aten.addmm.default"
    start_ns: int
    dur_ns: int  # host time around the call
    thread: int  # threading.get_ident()
    module: str | None  # innermost module on this thread's stack
    in_backward: bool
    seq_peek: int  # autograd's next sequence number after the op: it made an autograd node if it grew
    autograd: AutogradInfo | None  # in backward only
    frame: tuple[Any, int] | None  # (code object, line) of the first user frame
    inputs: list[RawTensor]
    outputs: list[RawTensor]
    alloc_bytes: int
    freed_bytes: int  # freed since the previous record
    live_bytes: int
    flops: int | tuple  # a count, or (formula, args, kwargs, out) as shapes: evaluated by the builder
    in_optimizer: bool  # inside Optimizer.step's record_function range
    extra: dict[str, Any] | None  # collective attributes, tensor previews, compiled-region facts
    #: forward code re-run in backward by activation checkpointing: its region, as (sequence number of
    #: the reentrant checkpoint's node, index of the region's first forward record), either None where
    #: unknown; None for every other op
    recompute: tuple[int | None, int | None] | None


(RAW_OP, RAW_START, RAW_DUR, RAW_THREAD, RAW_MODULE, RAW_BACKWARD, RAW_PEEK, RAW_AUTOGRAD, RAW_FRAME,
 RAW_INPUTS, RAW_OUTPUTS, RAW_ALLOC, RAW_FREED, RAW_LIVE, RAW_FLOPS, RAW_OPTIMIZER, RAW_EXTRA,
 RAW_RECOMPUTE) = range(18)

#: op name of the single node that stands for a torch.compile'd region (forward or backward)
COMPILED_REGION_OP = "gprof.compiled_region"


class FuncInfo:
    """Per-overload facts, computed once."""

    __slots__ = ("call", "flop_deferred", "flop_fn", "is_collective", "is_view", "name", "range_marker", "skip")

    def __init__(self, func: Any) -> None:
        from torch.utils.flop_counter import flop_registry

        self.name = str(func)
        # OpOverload.__call__ is only ``self._op(*args, **kwargs)``: calling the C++ op directly
        # saves a Python frame per op (~1 us here). Subclasses (TorchBindOpOverload) do more, and
        # so does an op with a Python-object dispatcher (torch 2.14 routes it elsewhere in __call__).
        direct = type(func) is OpOverload and getattr(func, "_pyobj_dispatcher", None) is None
        self.call = func._op if direct else func
        packet = getattr(func, "overloadpacket", None)
        self.flop_fn = flop_registry.get(packet) if packet is not None else None
        # Shape formulas (most) are evaluated after the step from recorded shapes: the registry's
        # wrappers walk pytrees, which costs more than a small matmul. Raw formulas need tensors.
        self.flop_deferred = hasattr(self.flop_fn, "__wrapped__")
        # record_function markers are bookkeeping, not work
        self.skip = getattr(func, "namespace", "") == "profiler"
        #: "enter"/"exit" for record_function's ops: Optimizer.step's range is the optimizer phase
        self.range_marker = ("enter" if "enter" in self.name else "exit" if "exit" in self.name else "") \
            if self.skip and "_record_function_" in self.name else ""
        self.is_collective = getattr(func, "namespace", "") in ("c10d", "_c10d_functional")
        self.is_view = alias_only(func)


def op_info(func: Any) -> FuncInfo:
    """The op's :class:`FuncInfo`, cached on the op object (facts about the op, the same in every session)."""
    try:
        return func._gprof_info
    except AttributeError:
        pass
    info = FuncInfo(func)
    try:
        func._gprof_info = info
    except (AttributeError, TypeError):  # an op object that takes no attributes: no caching
        pass
    return info


def count_flops(formula: Callable[..., int], args: Any, kwargs: dict, out: Any) -> int:
    """flop_counter's formula on this call (shapes or tensors); 0 where it does not apply."""
    try:
        return int(formula(*args, **kwargs, out_val=out))
    except Exception:  # a formula that does not cover this call
        return 0


_flop_cache: dict[Any, int] = {}


def count_flops_of_shapes(formula: Callable[..., int], args: Any, kwargs: dict, out: Any) -> int:
    """:func:`count_flops` for shape-only arguments, memoised: the same shapes come back every step,
    and the registry's pytree wrappers cost far more than the arithmetic."""
    try:
        key = (formula, _hashable(args), _hashable(kwargs), _hashable(out))
        hash(key)
    except TypeError:
        return count_flops(formula, args, kwargs, out)
    n = _flop_cache.get(key)
    if n is None:
        n = _flop_cache[key] = count_flops(formula, args, kwargs, out)
    return n


def _hashable(x: Any) -> Any:
    if type(x) is list or type(x) is tuple:
        return (type(x).__name__, *(_hashable(y) for y in x))
    if type(x) is dict:
        return tuple(sorted((k, _hashable(v)) for k, v in x.items()))
    return x
