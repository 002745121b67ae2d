"""kiln: compile ONNX models into portable engines and run them (CPU and NVIDIA GPUs).

Quick start::

    import kiln, numpy as np
    mod = kiln.compile("model.onnx", shapes={"x": ((1, 16), (8, 16), (64, 16))})
    y = mod(np.random.rand(4, 16).astype(np.float32))
    with kiln.runtime.cuda_graph_strategy("whole_graph_capture"):
        y = mod(x_on_gpu)
    mod.save("model.kiln"); mod2 = kiln.load("model.kiln")
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any, Mapping, Optional, Sequence, Tuple

from . import _kiln
from . import runtime
from .errors import (DeviceError, InternalError, InvalidEngineError, KilnError, MismatchError,
                     UnavailableError, UnsupportedModelError)
from .module import Module, apply_legacy_settings

__version__ = _kiln.__version__
__all__ = ["compile", "load", "prepare_backend", "export_onnx", "Module", "runtime", "KilnError",
           "InvalidEngineError", "UnsupportedModelError", "MismatchError", "DeviceError",
           "UnavailableError", "InternalError"]

Shape = Sequence[int]


def _normalize_shapes(shapes: Optional[Mapping[str, Any]]) -> dict:
    out = {}
    for name, spec in (shapes or {}).items():
        if len(spec) == 3 and all(isinstance(s, (tuple, list)) for s in spec):
            out[name] = tuple(tuple(int(d) for d in s) for s in spec)
        else:  # one static shape
            s = tuple(int(d) for d in spec)
            out[name] = (s, s, s)
    return out


def _export_torch(model, example_inputs, shapes: dict) -> bytes:
    import torch
    if example_inputs is None:
        raise ValueError("kiln.compile(torch.nn.Module) needs example_inputs=(tensor, ...)")
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    names = [f"input_{i}" for i in range(len(example_inputs))]
    dynamic_axes = {}
    for i, name in enumerate(names):
        spec = shapes.get(name)
        if spec:
            lo, _, hi = spec
            axes = {d: f"{name}_d{d}" for d in range(len(lo)) if lo[d] != hi[d]}
            if axes:
                dynamic_axes[name] = axes
    model = model.eval()
    errors = []
    # The TorchScript exporter first (kiln's importer is tested on its output); torch releases
    # that dropped it get the dynamo exporter.
    for dynamo in (False, True):
        buf = io.BytesIO()
        extra = {"external_data": False} if dynamo else {}
        try:
            with torch.no_grad():
                torch.onnx.export(model, tuple(example_inputs), buf, input_names=names,
                                  dynamic_axes=dynamic_axes or None, opset_version=18,
                                  dynamo=dynamo, **extra)
            return buf.getvalue()
        except Exception as e:  # noqa: BLE001 - reported below with both exporters' errors
            errors.append(f"dynamo={dynamo}: {type(e).__name__}: {e}")
    raise RuntimeError("torch.onnx.export failed:\n  " + "\n  ".join(errors))


def export_onnx(model, example_inputs, *, shapes: Optional[Mapping[str, Any]] = None) -> bytes:
    """Exports a torch.nn.Module to ONNX bytes the way kiln.compile does (inputs named input_0,
    input_1, ...; dims that differ between min and max in ``shapes`` become dynamic), so one
    export can serve several kiln.compile calls (shape profiles, precisions)."""
    return _export_torch(model, example_inputs, _normalize_shapes(shapes))


def compile(model, *, shapes: Optional[Mapping[str, Any]] = None, precision: str = "fp32",
            name: Optional[str] = None, example_inputs=None, optimization_level: int = 3,
            metadata: Optional[Mapping[str, str]] = None, **legacy) -> Module:
    """Builds an engine and returns a Module ready to run.

    model: a path to an ONNX file, ONNX bytes, or a torch.nn.Module (then ``example_inputs`` is
    required; its inputs are named input_0, input_1, ...).
    shapes: {input: (min, opt, max)} or {input: shape} for each input with dynamic dims.
    precision: "fp32", "fp16" or "bf16".
    Deprecated keywords ``cuda_graph_strategy``, ``dynamic_shapes_kernel_specialization_strategy``
    and ``runtime_cache_path`` still work, with a DeprecationWarning: they become the module's
    in-memory runtime settings and are never saved.
    """
    unknown = set(legacy) - {"cuda_graph_strategy", "dynamic_shapes_kernel_specialization_strategy",
                             "runtime_cache_path"}
    if unknown:
        raise TypeError(f"kiln.compile() got unexpected keyword arguments: {sorted(unknown)}")
    norm = _normalize_shapes(shapes)
    base_dir = ""
    if isinstance(model, (bytes, bytearray)):
        src = bytes(model)
    elif isinstance(model, (str, os.PathLike)):
        src = os.fspath(model)
    elif type(model).__module__.startswith("torch") or hasattr(model, "forward"):
        src = _export_torch(model, example_inputs, norm)
    else:
        raise TypeError("model must be an ONNX path, ONNX bytes or a torch.nn.Module")
    data = _kiln.build(src, base_dir, norm, precision, name or "", int(optimization_level),
                       dict(metadata or {}))
    mod = Module(_kiln.Engine.from_bytes(data), engine_bytes=data)
    if legacy:
        apply_legacy_settings(mod, legacy)
    return mod


def load(path) -> Module:
    """Loads an engine file written by ``kiln build`` or ``Module.save``.

    When PyTorch has initialised CUDA in this process already, this also opens kiln's CUDA
    backend on PyTorch's current device first (``prepare_backend``), so that its one-time set-up
    proceeds while the engine loads instead of during the first inference. It never initialises
    CUDA itself."""
    path = os.fspath(path)
    _prepare_torch_device()
    return Module(_kiln.Engine.load(path), path=path)


def prepare_backend(backend: str = "cuda", device: int = 0) -> None:
    """Opens kiln's ``backend`` on ``device`` now, as the first inference there would: for
    ``"cuda"`` the device's context and kiln's memory pool. Call it while doing other work to take
    that cost off the first inference. Raises kiln.UnavailableError without such a backend or
    device."""
    _kiln.prepare_backend(backend, int(device))


def _prepare_torch_device() -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if not torch.cuda.is_initialized():
            return
        device = torch.cuda.current_device()
    except Exception:  # a torch without CUDA, or in a state we do not know: nothing to prepare
        return
    try:
        _kiln.prepare_backend("cuda", device)
    except Exception:  # this kiln has no CUDA backend, say: the first run reports what matters
        pass
