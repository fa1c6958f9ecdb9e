"""Which nn.Module an op ran in, without the user passing a model.

Global forward pre/post hooks keep a per-thread stack of fully qualified names (the measured 100%
attribution of ../shared/notes/recording-facts.md). Names come from the root module's
``named_modules()``, so they are the names users see in ``state_dict`` keys. Backward attribution
is not done here: backward nodes inherit the module of the forward node that created them.
"""
from __future__ import annotations

import functools
import gc
import threading
import time
import warnings
import weakref
from typing import Any

import torch
from torch import nn

from gprof.capture.checkpoint import opened_region, top_saved_hooks


def _is_compiled(mod: nn.Module) -> bool:
    """``torch.compile(module)``, or ``module.compile()`` (in place) where Dynamo really compiles it:
    always for a user class; for PyTorch's own classes only on a torch whose in-place compile
    covers them (:func:`_in_place_compiles_torch_classes`), else they stay eager and their ops are
    recorded one by one."""
    if mod._compiled_call_impl is not None:
        return not type(mod).__module__.startswith("torch.") or _in_place_compiles_torch_classes()
    if type(mod).__name__ != "OptimizedModule":
        return False
    from torch._dynamo.eval_frame import OptimizedModule  # imported late: Dynamo is slow to import

    return isinstance(mod, OptimizedModule)


@functools.cache
def _in_place_compiles_torch_classes() -> bool:
    """Whether ``module.compile()`` compiles a module of PyTorch's own classes (``nn.Sequential``,
    ``nn.Linear``, ...) on the running torch. The behaviour genuinely differs by version:
    ``.compile()`` compiles the bound ``self._call_impl``, a frame in torch's own files that Dynamo
    skips, catching the frames it calls instead; when ``forward`` is in torch's files too (a skip
    rule), torch 2.13 and older skip that as well and the module runs eager, while torch 2.14 wraps
    such a ``_call_impl`` so that Dynamo traces it (``OptimizedModule._should_wrap_module_call_impl``).
    Detected by that hook rather than by the version number, so a build between releases answers
    for what it does (tests/test_compile_snippets.py checks it against what Dynamo does on the running
    torch). Only called once a module has been compiled in place, so Dynamo is already imported."""
    from torch._dynamo.eval_frame import OptimizedModule

    return callable(getattr(OptimizedModule, "_should_wrap_module_call_impl", None))


def _all_tracked_objects() -> list[Any]:
    """``gc.get_objects()``, frozen objects included: a recorded step runs on a frozen heap
    (gprof.capture.gc_freeze), and a process may have frozen its own. Re-freezing after the scan
    also freezes what was made since, which only spares those objects from rescans."""
    if not gc.get_freeze_count():
        return gc.get_objects()
    gc.unfreeze()
    try:
        return gc.get_objects()
    finally:
        gc.freeze()


class _OwnerIndex:
    """Which module owns which, process-wide, so a submodule called directly (``model.encoder(x)``)
    keeps its ``state_dict`` name.

    Building it means one pass over the garbage collector's objects (~50 ms with torch loaded);
    afterwards a global module-registration hook keeps it current (it runs only when a module is
    assigned to another, i.e. while models are built), so later profiling sessions in the same
    process (a notebook) find their model without scanning again. Modules that appear without
    registering (``copy.deepcopy``, unpickling) are unknown to the index, and looking one up
    rebuilds it; so does an ownership link that no longer holds (a submodule deleted or replaced).
    """

    def __init__(self) -> None:
        self._parent: weakref.WeakKeyDictionary[nn.Module, weakref.ref] = weakref.WeakKeyDictionary()
        self._known: weakref.WeakSet[nn.Module] = weakref.WeakSet()
        self._hook: Any = None

    def _rebuild(self) -> None:
        parent: weakref.WeakKeyDictionary[nn.Module, weakref.ref] = weakref.WeakKeyDictionary()
        known: weakref.WeakSet[nn.Module] = weakref.WeakSet()
        for obj in _all_tracked_objects():
            try:
                if not issubclass(type(obj), nn.Module):  # type(): never trips a deprecated __class__
                    continue
                children = obj.__dict__.get("_modules") or {}
            except Exception:  # objects with exotic __class__/__dict__ properties
                continue
            try:
                known.add(obj)
                for child in children.values():
                    if child is not None and child not in parent:
                        parent[child] = weakref.ref(obj)
            except TypeError:  # an unhashable module class: not indexed, named under its caller
                continue
        self._parent, self._known = parent, known
        if self._hook is None:
            self._hook = nn.modules.module.register_module_module_registration_hook(self._on_register)

    def _on_register(self, owner: nn.Module, name: str, child: Any) -> None:
        # Runs inside every module assignment of the process, profiled or not: it must never raise
        # (a module class with __eq__ but no __hash__ cannot be a weak key).
        if isinstance(child, nn.Module):
            try:
                self._parent.setdefault(child, weakref.ref(owner))
                self._known.add(owner)
                self._known.add(child)
            except TypeError:
                pass

    def _walk(self, mod: nn.Module) -> nn.Module | None:
        """The topmost owner by the index; None where a link no longer holds."""
        cur, seen = mod, {id(mod)}
        while True:
            ref = self._parent.get(cur)
            owner = ref() if ref is not None else None
            if owner is None:
                return cur
            if not any(c is cur for c in owner._modules.values()):
                return None
            if id(owner) in seen:  # a cycle of ownership: stop where it closes
                return cur
            seen.add(id(owner))
            cur = owner

    def outermost_owner(self, mod: nn.Module) -> nn.Module:
        if mod not in self._known:
            self._rebuild()
        top = self._walk(mod)
        if top is None:
            self._rebuild()
            top = self._walk(mod)
        return top if top is not None else mod


_owners = _OwnerIndex()


class ModuleScope:
    """Registry of module names plus the live module stack of every thread.

    A module has a *registered* name (its ``state_dict`` name; for a module no model owns, the
    name it got under its first caller) and, per call, a *call path*: the name the recorder files
    its ops under. The call path follows the call, so a module shared by several callers
    (transformers 5's rotary embedding, a weight-tied block) is counted where it ran: its
    registered name when the caller owns it (directly or through owned submodules), else the
    caller's call path plus the module's own last name part. The rule is docs/node-keys.md's.
    """

    def __init__(self) -> None:
        self._names: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        #: module -> name of the tree it was registered in (a root, or a module no model owns)
        self._tree: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        #: (registered name, caller's registered name, caller's call path) -> call path
        self._paths: dict[tuple[str, str, str], str] = {}
        self._roots: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        self._root_names: set[str] = set()
        self.types: dict[str, str] = {}
        self.builtin: dict[str, bool] = {}
        #: id(param) -> (weakref to the parameter, "module.param")
        self.params: dict[int, tuple[weakref.ref, str]] = {}
        #: thread -> its stack of call paths, innermost last (the recorder reads the top per op)
        self.stacks: dict[int, list[str]] = {}
        #: thread -> the modules of that stack, so a post hook pops back to its own entry
        self._callers: dict[int, list[nn.Module]] = {}
        self._handles: list[Any] = []
        #: thread -> [module name, module, start ns, ops seen] while inside a torch.compile'd module
        self.regions: dict[int, list[Any]] = {}
        #: called as (name, start_ns, ops_seen, args, out) when a compiled region returns
        self.on_region_end: Any = None
        #: called with the frame of a non-reentrant checkpoint region when its first module runs
        self.on_checkpoint: Any = None
        self._checkpoint_hook: Any = None
        self._warned_traced_hooks: set[str] = set()

    # naming ----------------------------------------------------------------------------------
    def _register_tree(self, root: nn.Module, root_name: str) -> None:
        for name, mod in root.named_modules(remove_duplicate=False):
            fqn = name if not root_name else (f"{root_name}.{name}" if name else root_name)
            if mod in self._names:
                continue
            self._names[mod] = fqn
            self._tree[mod] = root_name
            self.types[fqn] = type(mod).__name__
            self.builtin[fqn] = type(mod).__module__.startswith("torch.")
            for pname, p in mod.named_parameters(recurse=False):
                self.params[id(p)] = (weakref.ref(p), f"{fqn}.{pname}" if fqn else pname)

    def _new_root_name(self, mod: nn.Module) -> str:
        if not self._root_names:
            name = ""  # the first model seen is the root: its children get the plain state_dict names
        else:
            base = type(mod).__name__
            name, i = base, 1
            while name in self._root_names:
                i += 1
                name = f"{base}#{i}"
        self._root_names.add(name)
        return name

    def name_of(self, mod: nn.Module, parent: str | None) -> str:
        name = self._names.get(mod)
        if name is not None:
            return name
        if parent is None:
            # Training loops often call a submodule directly (model.encoder(x)): name it from
            # its outermost owner, so it keeps its state_dict name.
            top = _owners.outermost_owner(mod)
            root_name = self._roots.get(top)
            if root_name is None:
                root_name = self._roots[top] = self._new_root_name(top)
            self._register_tree(top, root_name)
            return self._names[mod]
        # A module called from inside another one that does not own it (created on the fly,
        # or added after the first call): re-scan the roots, else name it under its caller.
        for root, root_name in list(self._roots.items()):
            self._register_tree(root, root_name)
        name = self._names.get(mod)
        if name is None:
            base = f"{parent}.{type(mod).__name__}" if parent else type(mod).__name__
            name = base
            self._names[mod] = name
            self.types[name] = type(mod).__name__
            self.builtin[name] = type(mod).__module__.startswith("torch.")
            self._register_tree(mod, name)
        return name

    def call_path(self, mod: nn.Module, name: str, caller: nn.Module, caller_path: str) -> str:
        """Where ``mod`` (registered as ``name``) runs when ``caller`` (running at ``caller_path``)
        calls it: under the caller's path by the part of the name below the caller's own, when
        the caller's tree owns it; else the caller's path plus the last part of its name."""
        caller_name = self._names.get(caller, caller_path)
        key = (name, caller_name, caller_path)
        path = self._paths.get(key)
        if path is not None:
            return path
        tree = self._tree.get(mod)
        owned = tree is not None and tree == self._tree.get(caller) and (
            caller_name == tree or name.startswith(caller_name + "." if caller_name else ""))
        if owned:
            path = caller_path + name[len(caller_name):] if caller_name else (
                f"{caller_path}.{name}" if caller_path else name)
        else:
            leaf = name.rpartition(".")[2] or type(mod).__name__
            path = f"{caller_path}.{leaf}" if caller_path else leaf
        if path not in self.types:
            self.types[path] = type(mod).__name__
            self.builtin[path] = type(mod).__module__.startswith("torch.")
        self._paths[key] = path
        return path

    def param_name(self, p: torch.Tensor) -> str | None:
        entry = self.params.get(id(p))
        if entry is not None and entry[0]() is p:
            return entry[1]
        return None

    def known_modules(self) -> list[nn.Module]:
        return list(self._names.keys())

    # stack ------------------------------------------------------------------------------------
    def current(self, ident: int) -> str | None:
        stack = self.stacks.get(ident)
        return stack[-1] if stack else None

    def stack(self, ident: int) -> list[str]:
        return self.stacks.setdefault(ident, [])

    # The hooks run inside torch.compile'd modules too; Dynamo must run them as they are, never
    # trace them (that would recompile the user's module and record nothing).
    @torch._dynamo.disable
    def _pre(self, mod: nn.Module, args: Any) -> None:
        ident = threading.get_ident()
        stack = self.stacks.setdefault(ident, [])
        callers = self._callers.setdefault(ident, [])
        name = self.name_of(mod, stack[-1] if stack else None)
        if callers:
            name = self.call_path(mod, name, callers[-1], stack[-1])
        stack.append(name)
        callers.append(mod)
        if self.on_checkpoint is not None:
            hooks = top_saved_hooks(False)
            if hooks is not None and hooks[0] is not self._checkpoint_hook:
                self._checkpoint_hook = hooks[0]
                frame = opened_region(hooks[0])
                if frame is not None:
                    self.on_checkpoint(frame)
        if ident not in self.regions and _is_compiled(mod):
            self.regions[ident] = [name, mod, time.perf_counter_ns(), 0]
            if mod._compiled_call_impl is not None and type(mod).__module__.startswith("torch."):
                self._warn_traced_hooks(name, mod)

    def _warn_traced_hooks(self, name: str, mod: nn.Module) -> None:
        """A PyTorch module class compiled in place (torch 2.14 on, see
        :func:`_in_place_compiles_torch_classes`) is compiled through its own ``_call_impl``, so
        Dynamo traces the global module hooks this recording installs: it recompiles the module
        with a graph break at each submodule, and the step recorded is not the user's compiled code.
        ``torch.compile(module)`` runs the module's hooks outside the compiled code and records as
        one region. Said once per module."""
        if name in self._warned_traced_hooks:
            return
        self._warned_traced_hooks.add(name)
        warnings.warn(f"torch-gprof: {name or 'the model'} ({type(mod).__name__}) was compiled in place "
                      "(module.compile()); on this torch Dynamo then traces torch-gprof's module hooks, so "
                      "recording recompiles it with a graph break at each submodule and this step is not "
                      "its usual compiled code. To record it as one compiled region, compile it with "
                      "torch.compile(module) instead.",
                      RuntimeWarning, stacklevel=2)

    @torch._dynamo.disable
    def _post(self, mod: nn.Module, args: Any, out: Any) -> None:
        ident = threading.get_ident()
        region = self.regions.get(ident)
        if region is not None and region[1] is mod:
            del self.regions[ident]
            if self.on_region_end is not None:
                self.on_region_end(region[0], region[2], region[3], args, out)
        stack = self.stacks.get(ident)
        callers = self._callers.get(ident)
        if stack and callers and any(c is mod for c in callers):
            # pop back to this module even if an inner module raised and skipped its post hook
            while callers:
                stack.pop()
                if callers.pop() is mod:
                    break

    def reset_stacks(self) -> None:
        for s in self.stacks.values():
            s.clear()
        self._callers.clear()
        self.regions.clear()
        self._checkpoint_hook = None

    def install(self) -> None:
        reg = nn.modules.module
        self._handles = [
            reg.register_module_forward_pre_hook(self._pre),
            reg.register_module_forward_hook(self._post, always_call=True),
        ]

    def uninstall(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.stacks.clear()
        self._callers.clear()
        self.regions.clear()
