"""Exception classes for kiln errors. Every C++ Status code maps to one of these."""

from . import _kiln


class KilnError(Exception):
    """Base class of every error kiln raises for a failed operation."""


class InvalidEngineError(KilnError, ValueError):
    """An engine, model or cache file is corrupt, truncated or of an unreadable version."""


class UnsupportedModelError(KilnError):
    """The model uses an op, dtype or opset that kiln does not support (CLI exit code 3)."""


class MismatchError(KilnError):
    """A comparison or check failed."""


class DeviceError(KilnError, RuntimeError):
    """A CUDA, cuBLAS, NVRTC or cuDNN call failed."""


class UnavailableError(KilnError, RuntimeError):
    """The requested backend or device is not available on this machine (for example no GPU)."""


class InternalError(KilnError, RuntimeError):
    """A bug in kiln: please report it with the message."""


_kiln._set_error_classes({
    int(_kiln.StatusCode.invalid_argument): ValueError,
    int(_kiln.StatusCode.not_found): FileNotFoundError,
    int(_kiln.StatusCode.invalid_data): InvalidEngineError,
    int(_kiln.StatusCode.io_error): OSError,
    int(_kiln.StatusCode.unsupported): UnsupportedModelError,
    int(_kiln.StatusCode.resource_exhausted): MemoryError,
    int(_kiln.StatusCode.unavailable): UnavailableError,
    int(_kiln.StatusCode.device_error): DeviceError,
    int(_kiln.StatusCode.mismatch): MismatchError,
    int(_kiln.StatusCode.cancelled): KilnError,
    int(_kiln.StatusCode.internal): InternalError,
})
