"""Runtime modes: how kiln runs an engine, set per call, per module, per scope or per process.

None of these settings is ever stored in an engine file. Scopes are backed by ``contextvars``:
each thread and each asyncio task sees only its own ``with`` blocks. Every context manager here
also works as a decorator (on plain and ``async`` functions).

Resolution, highest wins: per-call ``settings=`` > per-module (``runtime_config``,
``Module.runtime_settings``) > scopes (``with kiln.runtime.cuda_graph_strategy(...)``) > process
defaults (``set_runtime_cache_path``, ``set_multi_device_safe_mode``) > environment
(``KILN_CUDA_GRAPH_STRATEGY``, ``KILN_KERNEL_SPECIALIZATION``, ``KILN_RUNTIME_CACHE``,
``KILN_MULTI_DEVICE_SAFE_MODE``) > built-in defaults.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
from typing import Any, Iterable, Mapping, Optional, Union

from . import _kiln

__all__ = [
    "RuntimeSettings", "cuda_graph_strategy", "dynamic_shapes_kernel_strategy", "runtime_cache",
    "set_runtime_cache_path", "multi_device_safe_mode", "set_multi_device_safe_mode",
    "runtime_config", "current_settings", "enable_cudagraphs",
]


class _Unset:
    def __repr__(self):
        return "UNSET"


UNSET: Any = _Unset()

_FIELDS = ("cuda_graph_strategy", "dynamic_shapes_kernel_specialization_strategy", "runtime_cache",
           "multi_device_safe_mode")


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """A partial set of runtime settings; a field left UNSET defers to the layer below.

    ``runtime_cache`` is a path, or None for no persistent cache.
    """

    cuda_graph_strategy: Any = UNSET
    dynamic_shapes_kernel_specialization_strategy: Any = UNSET
    runtime_cache: Any = UNSET
    multi_device_safe_mode: Any = UNSET

    def __post_init__(self):
        _kiln.validate_settings(self.to_dict())  # ValueError naming the valid values

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not UNSET}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RuntimeSettings":
        return cls(**dict(d))

    def merge(self, higher: "RuntimeSettings") -> "RuntimeSettings":
        """Returns these settings with every field that ``higher`` sets replaced by its value."""
        return RuntimeSettings(**{**self.to_dict(), **higher.to_dict()})


@dataclasses.dataclass(frozen=True)
class ResolvedSettings:
    """Every setting resolved, with where each value came from (call, engine, scope, default,
    environment, builtin)."""

    cuda_graph_strategy: str
    dynamic_shapes_kernel_specialization_strategy: str
    runtime_cache: Optional[str]
    multi_device_safe_mode: bool
    sources: Mapping[str, str]


# The merged overrides of every enclosing scope, and per-module overrides keyed by module id.
_scope: contextvars.ContextVar[dict] = contextvars.ContextVar("kiln_runtime_scope", default={})
_module_scope: contextvars.ContextVar[dict] = contextvars.ContextVar("kiln_module_scope", default={})


def _scope_dict() -> dict:
    return _scope.get()


def _module_overrides(module) -> Optional[dict]:
    own = module._runtime_settings.to_dict()
    scoped = _module_scope.get().get(id(module))
    if scoped:
        own = {**own, **scoped}
    return own or None


class _Scope:
    """A ``with`` block (or decorator) that overrides some settings for the current context."""

    def __init__(self, overrides: Mapping[str, Any]):
        self._overrides = dict(overrides)
        _kiln.validate_settings(self._overrides)
        self._tokens: list = []

    def __enter__(self):
        self._tokens.append(_scope.set({**_scope.get(), **self._overrides}))
        return self

    def __exit__(self, *exc):
        _scope.reset(self._tokens.pop())
        return False

    def __call__(self, fn):
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                with _Scope(self._overrides):
                    return await fn(*args, **kwargs)
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _Scope(self._overrides):
                return fn(*args, **kwargs)
        return wrapper

    def __repr__(self):
        return f"kiln.runtime scope {self._overrides}"


def cuda_graph_strategy(name: str) -> _Scope:
    """Sets the CUDA-graph strategy inside the block: ``"disabled"`` (launch kernels one by one)
    or ``"whole_graph_capture"`` (capture each whole execution as a CUDA graph once its kernels
    are final, then replay it). Raises ValueError for any other name. Has no effect on the CPU
    backend."""
    return _Scope({"cuda_graph_strategy": name})


def dynamic_shapes_kernel_strategy(name: str) -> _Scope:
    """Sets what kiln does on a call with an input shape it has not seen before: ``"lazy"`` (run
    generic kernels now, and GEMMs that cuBLASLt is not ready for on kiln's own kernel; specialise
    and get cuBLASLt ready in the background), ``"eager"`` (compile specialised kernels before
    running) or ``"none"`` (generic kernels only). Raises ValueError for any other name."""
    return _Scope({"dynamic_shapes_kernel_specialization_strategy": name})


def runtime_cache(path: Optional[Union[str, "os.PathLike"]]) -> _Scope:
    """Uses the runtime kernel cache file at ``path`` inside the block (None: no persistent
    cache)."""
    return _Scope({"runtime_cache": None if path is None else str(path)})


def multi_device_safe_mode(enabled: bool) -> _Scope:
    """When True, every call checks the current CUDA device and switches to the engine
    context's device (restoring it afterwards)."""
    return _Scope({"multi_device_safe_mode": bool(enabled)})


def set_runtime_cache_path(path: Optional[Union[str, "os.PathLike"]]) -> None:
    """Sets the process-wide default runtime cache (None: no persistent cache)."""
    _kiln.update_default_settings({"runtime_cache": None if path is None else str(path)})


def set_multi_device_safe_mode(enabled: bool) -> None:
    """Sets the process-wide default of multi_device_safe_mode."""
    _kiln.update_default_settings({"multi_device_safe_mode": bool(enabled)})


class runtime_config:
    """Overrides settings for specific modules inside the block (or decorated function), above
    any scope; other modules are unaffected. Accepts one module or an iterable of modules::

        with kiln.runtime.runtime_config([enc, dec], cuda_graph_strategy="whole_graph_capture"):
            ...
    """

    def __init__(self, modules, **overrides):
        if "dynamic_shapes_kernel_strategy" in overrides:
            overrides["dynamic_shapes_kernel_specialization_strategy"] = overrides.pop(
                "dynamic_shapes_kernel_strategy")
        _kiln.validate_settings(overrides)
        self._modules = [modules] if not isinstance(modules, Iterable) else list(modules)
        self._overrides = overrides
        self._tokens: list = []

    def __enter__(self):
        current = dict(_module_scope.get())
        for m in self._modules:
            current[id(m)] = {**current.get(id(m), {}), **self._overrides}
        self._tokens.append(_module_scope.set(current))
        return self

    def __exit__(self, *exc):
        _module_scope.reset(self._tokens.pop())
        return False

    def __call__(self, fn):
        mods, ov = self._modules, self._overrides
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                with runtime_config(mods, **ov):
                    return await fn(*args, **kwargs)
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with runtime_config(mods, **ov):
                return fn(*args, **kwargs)
        return wrapper


def current_settings(module=None, settings: Optional[RuntimeSettings] = None) -> ResolvedSettings:
    """The settings a call would resolve right now in this thread / task (optionally for
    ``module`` and with per-call ``settings``), each value with its source."""
    module_d = _module_overrides(module) if module is not None else None
    call_d = settings.to_dict() if settings is not None else None
    r = _kiln.resolve_settings(call_d, module_d, _scope_dict())
    v = r["values"]
    return ResolvedSettings(sources=dict(r["sources"]), **v)


# --- enable_cudagraphs: one CUDA graph for a Python callable of kiln modules and torch ops ------

# While set, every Module.run appends (module, shapes, backend, device, call, module, scope).
_recorder: contextvars.ContextVar[Optional[list]] = contextvars.ContextVar("kiln_call_recorder",
                                                                          default=None)


def _record_call(module, xs, backend, device, call, module_d, scope_d) -> None:
    rec = _recorder.get()
    if rec is not None:
        rec.append((module, [tuple(x.shape) for x in xs], backend, device, call, module_d, scope_d))


def _capturable(module, shapes, backend, device, call, module_d, scope_d) -> None:
    """Raises unless this recorded kiln call can join a capture on the caller's stream."""
    from .errors import UnavailableError
    if backend != "cuda":
        raise UnavailableError(
            f"enable_cudagraphs: kiln module '{module.name}' ran on the CPU (its inputs were host "
            f"tensors); pass CUDA tensors to every kiln module inside the captured function")
    ok, reason = module._engine.is_stream_capturable([list(s) for s in shapes], backend, device,
                                                     call, module_d, scope_d)
    if not ok:
        raise UnavailableError(
            f"enable_cudagraphs: kiln module '{module.name}' cannot join a CUDA graph capture for "
            f"input shapes {shapes} under the current settings: {reason}")


def _tensor_key(x):
    return ("tensor", tuple(x.shape), str(x.dtype), str(x.device))


class _GraphedCallable:
    """See enable_cudagraphs."""

    def __init__(self, fn, warmup: int, capture_error_mode: str):
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._warmup = max(1, int(warmup))
        self._mode = capture_error_mode
        self._graphs: dict = {}
        self._pool = None

    @property
    def num_graphs(self) -> int:
        """How many input signatures have a captured graph."""
        return len(self._graphs)

    def reset(self) -> None:
        """Drops every captured graph (the next call per signature captures again)."""
        self._graphs.clear()

    def _split(self, args, kwargs):
        import torch
        tensors, key = [], []
        for v in list(args) + [kwargs[k] for k in sorted(kwargs)]:
            if isinstance(v, torch.Tensor):
                tensors.append(v)
                key.append(_tensor_key(v))
            else:
                key.append(("value", v))
        key.append(tuple(sorted(kwargs)))
        return tensors, tuple(key)

    def _rebuild(self, args, kwargs, tensors):
        import torch
        it = iter(tensors)
        new_args = [next(it) if isinstance(a, torch.Tensor) else a for a in args]
        new_kwargs = {}
        for k in sorted(kwargs):
            new_kwargs[k] = next(it) if isinstance(kwargs[k], torch.Tensor) else kwargs[k]
        return new_args, new_kwargs

    def _capture(self, args, kwargs, tensors):
        import torch
        if not tensors or not all(t.is_cuda for t in tensors):
            raise TypeError("enable_cudagraphs: every tensor argument must be a CUDA torch tensor")
        static = [t.detach().clone() for t in tensors]
        s_args, s_kwargs = self._rebuild(args, kwargs, static)
        # Warm up on a side stream (torch's recipe): kernels get compiled, allocator pools fill,
        # and every kiln call is recorded for the capturability check.
        calls: list = []
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for i in range(self._warmup):
                token = _recorder.set(calls if i == 0 else None)
                try:
                    self._fn(*s_args, **s_kwargs)
                finally:
                    _recorder.reset(token)
        torch.cuda.current_stream().wait_stream(side)
        for call in calls:
            _capturable(*call)
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode=self._mode):
            outputs = self._fn(*s_args, **s_kwargs)
        return graph, static, outputs, len(calls)

    def __call__(self, *args, **kwargs):
        tensors, key = self._split(args, kwargs)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(args, kwargs, tensors)
            self._graphs[key] = entry
        graph, static, outputs, _ = entry
        for dst, src in zip(static, tensors):
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src)
        graph.replay()
        return outputs


def enable_cudagraphs(fn=None, *, warmup: int = 2, capture_error_mode: str = "thread_local"):
    """Captures a Python callable (kiln modules plus torch ops) as one ``torch.cuda.CUDAGraph``
    per input signature (shapes, dtypes and devices of its tensor arguments, plus its other
    arguments, which must be hashable), then replays it::

        @kiln.runtime.enable_cudagraphs
        def pipeline(x):
            return decoder(torch.relu(encoder(x)))

    The first call of a signature runs ``fn`` ``warmup`` times on a side stream, checks that
    every kiln module it called is capturable on the caller's stream under the settings in
    force (UnavailableError naming the module and the setting to change otherwise), then
    captures one more call. Later calls copy their tensors into the graph's static inputs and
    replay. The returned outputs are the graph's static outputs: the next call with the same
    signature overwrites them (clone what you keep), as with torch.cuda.make_graphed_callables.
    Settings are read at capture time; changing them later does not re-capture (``reset()``
    does). Tensor arguments must be top-level positional or keyword arguments.
    """
    if fn is None:
        return lambda f: enable_cudagraphs(f, warmup=warmup, capture_error_mode=capture_error_mode)
    return _GraphedCallable(fn, warmup, capture_error_mode)
