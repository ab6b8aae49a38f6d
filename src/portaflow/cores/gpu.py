"""Finding a usable GPU (CuPy) for the science cores, or saying clearly why there is none.

Why one module for both cores: the rule is that `device="gpu"` never silently runs on the CPU, so every
place that wants the GPU goes through `require_cupy`, which either returns a CuPy that has just run a
kernel on a device or raises GPUUnavailableError with the reason.
"""

from __future__ import annotations

import os
from typing import Any

GPU_RESOURCE_ENV = "PORTAFLOW_DASK_GPU_RESOURCE"
DEVICES = ("cpu", "gpu")


class GPUUnavailableError(RuntimeError):
    """A GPU was requested (device="gpu") but CuPy or a CUDA device is not usable here."""


def gpu_resource_name() -> str:
    """The Dask worker resource that GPU workers advertise (set by portaflow for GPU steps)."""
    return os.environ.get(GPU_RESOURCE_ENV, "GPU")


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def require_cupy() -> Any:
    """CuPy, after a tiny computation on the current device proved it works; else GPUUnavailableError."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        raise GPUUnavailableError(f"device 'gpu' was requested but CuPy cannot be imported ({type(exc).__name__}: {exc}); "
                                  "install cupy-cuda12x on a machine with an NVIDIA GPU, or use device 'cpu'") from exc
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        if count < 1:
            raise GPUUnavailableError("device 'gpu' was requested but CUDA reports no device")
        if int((cupy.arange(4, dtype=cupy.int64) ** 2).sum().item()) != 14:
            raise GPUUnavailableError("device 'gpu' was requested but a test kernel gave a wrong result")
    except GPUUnavailableError:
        raise
    except Exception as exc:  # CUDARuntimeError, driver too old, no device visible, ...
        raise GPUUnavailableError(f"device 'gpu' was requested but no usable CUDA device was found "
                                  f"({type(exc).__name__}: {exc})") from exc
    return cupy


def unavailable_reason() -> str | None:
    """Why GPU code cannot run here (None when CuPy has a working device): what GPU tests and the
    portability matrix report when they skip."""
    try:
        require_cupy()
    except GPUUnavailableError as exc:
        return str(exc)
    return None


def array_module(device: str) -> Any:
    """numpy for the CPU, a verified CuPy for the GPU."""
    if check_device(device) == "gpu":
        return require_cupy()
    import numpy

    return numpy


def to_host(array: Any) -> Any:
    """A numpy array from a numpy or CuPy array."""
    if type(array).__module__.startswith("cupy"):
        return array.get()
    import numpy

    return numpy.asarray(array)
