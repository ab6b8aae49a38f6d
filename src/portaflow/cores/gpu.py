"""Finding a usable GPU (CuPy) for the science cores, or saying clearly why there is none.

Why one module for both cores: the rule is that `device="gpu"` never silently runs on the CPU, so every
place that wants the GPU goes through `require_cupy`, which either returns a CuPy that has just run a
kernel on a device or raises GPUUnavailableError with the reason.  The probe itself lives in
:mod:`portaflow.gpuprobe` (a level-0 module the matrix and the tests use without importing a core) and is
re-exported here, so the cores' API is unchanged.
"""

from __future__ import annotations

import os
from typing import Any

from portaflow.gpuprobe import GPUUnavailableError as GPUUnavailableError, require_cupy as require_cupy

GPU_RESOURCE_ENV = "PORTAFLOW_DASK_GPU_RESOURCE"
DEVICES = ("cpu", "gpu")


def gpu_resource_name() -> str:
    """The Dask worker resource that GPU workers advertise (set by portaflow for GPU steps)."""
    return os.environ.get(GPU_RESOURCE_ENV) or "GPU"


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


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
