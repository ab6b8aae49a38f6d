"""GPU gridding backend: the ES w-gridder of :mod:`.esgridder` run with CuPy arrays.

The GPU path is opt-in and must never degrade silently: :func:`portaflow.cores.gpu.require_cupy` proves a
CUDA device works or raises GPUUnavailableError with the reason.  Note: this backend has not been run on a GPU yet;
its algorithm is tested on the CPU with numpy (same code, ``xp = numpy``) against a direct DFT.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from portaflow.cores.gpu import require_cupy

from . import esgridder
from .geometry import Backend, ImageGeometry


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
