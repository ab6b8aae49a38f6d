"""Whether a GPU can compute here: CuPy imports, CUDA sees a device, and a tiny kernel gives the right answer.

Why a module of its own at the bottom of the layers: the science cores need the probe (``device="gpu"``
must never silently run on the CPU), and so do the portability matrix and the tests (to report why a
GPU cell or test is skipped). Neither of the latter may import a science core, so the probe lives here,
imports nothing of portaflow, and :mod:`portaflow.cores.gpu` re-exports it.
"""

from __future__ import annotations

from typing import Any


class GPUUnavailableError(RuntimeError):
    """A GPU was requested (device="gpu") but CuPy or a CUDA device is not usable here."""


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
