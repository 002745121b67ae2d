"""kiln.Module: a loaded engine you call like a function."""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

from . import _kiln
from . import runtime as _rt


class _Carrier:
    """Hands one DLPack capsule to a consumer's from_dlpack (numpy, torch, cupy)."""

    __slots__ = ("_capsule", "_device")

    def __init__(self, capsule, device):
        self._capsule = capsule
        self._device = device

    def __dlpack__(self, *args, **kwargs):
        return self._capsule

    def __dlpack_device__(self):
        return self._device


def _kind(x) -> str:
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return "torch"
    if mod == "cupy":
        return "cupy"
    return "numpy"


# The stream handle kiln is given for a caller on the legacy default stream (cudaStreamLegacy):
# kiln then orders its work after that stream and that stream after kiln's, and does not wait.
_LEGACY_STREAM = 1


def _torch_stream(torch, index: int) -> int:
    """The raw handle of torch's current stream on device `index` (0: the legacy default)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None:
        return raw(index)
    return torch.cuda.current_stream(index).cuda_stream


def _to_capsule(x):
    """(capsule or array, kind, (DLPack device type, index), CUDA stream handle for kiln or 0).

    CUDA inputs are exported without a DLPack stream handshake (that costs an event per call):
    kiln itself orders its work after the caller's current stream, whose handle it is given."""
    kind = _kind(x)
    if kind == "numpy":
        import numpy as np
        # numpy goes through the buffer protocol: zero-copy, and read-only arrays work too.
        return np.ascontiguousarray(x), kind, (1, 0), 0
    if kind == "torch":
        import torch
        x = x.contiguous()
        if x.is_cuda:
            index = x.device.index
            stream = _torch_stream(torch, index)
            return torch.utils.dlpack.to_dlpack(x), kind, (2, index), stream or _LEGACY_STREAM
        return torch.utils.dlpack.to_dlpack(x), kind, (1, 0), 0
    import cupy
    x = cupy.ascontiguousarray(x)
    stream = cupy.cuda.get_current_stream().ptr
    return x.toDlpack(), kind, (2, x.device.id), stream or _LEGACY_STREAM


def _from_capsule(capsule, kind: str, device):
    if kind == "torch":
        import torch
        return torch.utils.dlpack.from_dlpack(capsule)
    if kind == "cupy":
        import cupy
        return cupy.from_dlpack(_Carrier(capsule, device))
    import numpy as np
    return np.from_dlpack(_Carrier(capsule, device))


class Module:
    """A kiln engine ready to run. Call it with tensors (numpy arrays, torch tensors, cupy
    arrays: anything DLPack) and get outputs of the same kind back, on the same device.

    ``runtime_settings`` (a kiln.runtime.RuntimeSettings) is this module's own layer of runtime
    settings: above scopes, below per-call ``settings=``. It lives in memory only; ``save()``
    never writes it.
    """

    def __init__(self, engine: "_kiln.Engine", engine_bytes: Optional[bytes] = None,
                 path: Optional[str] = None):
        self._engine = engine
        self._bytes = engine_bytes
        self._path = path
        self._runtime_settings = _rt.RuntimeSettings()

    @property
    def runtime_settings(self) -> "_rt.RuntimeSettings":
        return self._runtime_settings

    @runtime_settings.setter
    def runtime_settings(self, value: "_rt.RuntimeSettings") -> None:
        if isinstance(value, dict):
            value = _rt.RuntimeSettings.from_dict(value)
        if not isinstance(value, _rt.RuntimeSettings):
            raise TypeError("runtime_settings must be a kiln.runtime.RuntimeSettings")
        self._runtime_settings = value

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def inputs(self) -> list:
        return self._engine.inputs

    @property
    def outputs(self) -> list:
        return self._engine.outputs

    @property
    def info(self) -> dict:
        return self._engine.info

    def stats(self) -> dict:
        """Calls, execution contexts created and reused (per settings key)."""
        return self._engine.stats()

    def save(self, path) -> None:
        """Writes the engine file. Runtime settings are never part of it."""
        data = self._bytes
        if data is None:
            with open(self._path, "rb") as f:
                data = f.read()
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def run(self, *xs, settings: Optional["_rt.RuntimeSettings"] = None):
        """Runs the engine; returns a list of outputs."""
        capsules, kinds, devices, streams = [], [], [], []
        for x in xs:
            c, k, d, s = _to_capsule(x)
            capsules.append(c)
            kinds.append(k)
            devices.append(d)
            streams.append(s)
        device = next((d for d in devices if d[0] == 2), (1, 0))
        backend = "cuda" if device[0] == 2 else "cpu"
        kind = kinds[0] if kinds else "numpy"
        stream = next((s for s in streams if s), 0)
        call = settings.to_dict() if settings is not None else None
        module_d = _rt._module_overrides(self)
        scope_d = _rt._scope_dict()
        _rt._record_call(self, xs, backend, device[1], call, module_d, scope_d)
        # On CUDA kiln runs ordered after what the caller queued on its current stream (torch /
        # cupy; the legacy default stream included) and that stream waits for kiln's work: the
        # call returns without waiting for the GPU, like a torch op.
        out = self._engine.run(capsules, backend, device[1], call, module_d, scope_d, stream)
        return [_from_capsule(c, kind, device) for c in out]

    def is_stream_capturable(self, *xs, settings: Optional["_rt.RuntimeSettings"] = None):
        """(capturable, reason): whether a call with inputs of these shapes, on CUDA, can be
        enqueued into a CUDA-graph capture on the caller's stream under the settings in force
        now; `reason` says why not and what to change. May run the engine once on zeros."""
        shapes = [list(x.shape) for x in xs]
        device = next((x.device.index for x in xs if getattr(x, "is_cuda", False)), 0)
        call = settings.to_dict() if settings is not None else None
        return tuple(self._engine.is_stream_capturable(shapes, "cuda", device or 0, call,
                                                       _rt._module_overrides(self), _rt._scope_dict()))

    def __call__(self, *xs, settings: Optional["_rt.RuntimeSettings"] = None):
        out = self.run(*xs, settings=settings)
        return out[0] if len(out) == 1 else tuple(out)

    def __repr__(self):
        ins = ", ".join(f"{b['name']}: {b['dtype']}[{', '.join(b['dims'])}]" for b in self.inputs)
        return f"kiln.Module({self.name!r}, inputs=({ins}))"


_LEGACY = {
    "cuda_graph_strategy": ("cuda_graph_strategy", "kiln.runtime.cuda_graph_strategy(...)"),
    "dynamic_shapes_kernel_specialization_strategy": (
        "dynamic_shapes_kernel_specialization_strategy", "kiln.runtime.dynamic_shapes_kernel_strategy(...)"),
    "runtime_cache_path": ("runtime_cache", "kiln.runtime.runtime_cache(...)"),
}


def apply_legacy_settings(module: Module, legacy: dict) -> None:
    """Turns deprecated compile-time runtime keywords into the module's in-memory settings."""
    overrides = {}
    for key, value in legacy.items():
        field, replacement = _LEGACY[key]
        warnings.warn(
            f"kiln.compile({key}=...) is deprecated: runtime modes are not compile settings. Use "
            f"{replacement} or module.runtime_settings; the value applies to this module in memory "
            f"only and is never saved.", DeprecationWarning, stacklevel=3)
        overrides[field] = value
    module.runtime_settings = module.runtime_settings.merge(_rt.RuntimeSettings(**overrides))
