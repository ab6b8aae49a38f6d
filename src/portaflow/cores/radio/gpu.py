"""GPU gridding backend: the ES w-gridder of :mod:`.esgridder` run with CuPy arrays.

The GPU path is opt-in and must never degrade silently: :func:`require_cupy` imports CuPy, counts the
CUDA devices and runs a tiny kernel, and turns any failure into :class:`GPUUnavailableError` with the
reason.  Note: this backend has not been run on a GPU yet; its algorithm is tested on the CPU with
numpy (same code, ``xp = numpy``) against a direct DFT.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from . import esgridder
from .gridding import Backend, GPUUnavailableError, ImageGeometry


def require_cupy() -> Any:
    """Return the ``cupy`` module if a CUDA device really works, else raise GPUUnavailableError."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library failing to load
        raise GPUUnavailableError(
            f"device 'gpu' was requested but CuPy cannot be imported ({type(exc).__name__}: {exc}); "
            "install cupy-cuda12x on a machine with an NVIDIA GPU, or use device 'cpu'") from exc
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        raise GPUUnavailableError(f"device 'gpu' was requested but no CUDA device is usable "
                                  f"({type(exc).__name__}: {exc})") from exc
    if count < 1:
        raise GPUUnavailableError("device 'gpu' was requested but CuPy sees no CUDA device")
    try:
        if int((cupy.arange(4) ** 2).sum().item()) != 14:
            raise RuntimeError("wrong result from a test kernel")
    except Exception as exc:
        raise GPUUnavailableError(f"device 'gpu' was requested but a CuPy test kernel failed "
                                  f"({type(exc).__name__}: {exc})") from exc
    return cupy


def _gpu_vis2dirty(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, wgt: np.ndarray | None,
                   geom: ImageGeometry, nthreads: int = 1, *, xp: Any) -> np.ndarray:
    del nthreads  # the GPU does not use host threads
    return esgridder.vis2dirty(uvw, freq, vis, wgt, geom, xp=xp)


def _gpu_dirty2vis(uvw: np.ndarray, freq: np.ndarray, dirty: np.ndarray, geom: ImageGeometry,
                   nthreads: int = 1, *, xp: Any) -> np.ndarray:
    del nthreads
    return esgridder.dirty2vis(uvw, freq, dirty, geom, xp=xp)


def gpu_backend() -> Backend:
    """The CuPy backend, after checking that the GPU works (raises GPUUnavailableError otherwise)."""
    cupy = require_cupy()
    return Backend("gpu", partial(_gpu_vis2dirty, xp=cupy), partial(_gpu_dirty2vis, xp=cupy))


def numpy_es_backend() -> Backend:
    """The same ES gridder on the CPU with numpy: how the GPU algorithm is tested without a GPU."""
    return Backend("es-numpy", partial(_gpu_vis2dirty, xp=np), partial(_gpu_dirty2vis, xp=np))
