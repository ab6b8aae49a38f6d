"""Gridding (visibilities -> dirty image) and degridding (image -> visibilities), CPU or GPU.

One interface for both devices so that the imager, CLEAN and the distributed code never branch on
the device: :func:`get_backend` returns a :class:`Backend` whose two functions take numpy arrays and
return numpy arrays.  The CPU backend is ducc0.wgridder; the GPU backend (:mod:`.gpu`) is a CuPy
w-gridder with the same accuracy target.  Asking for the GPU when CuPy or a device is unusable raises
:class:`GPUUnavailableError`: never a silent CPU fallback.

Sign convention (the one real Measurement Sets follow, see the package docstring): visibilities are
``V = sum I exp(+2 pi i (u l + v m + w (n-1)))`` with uvw the MS UVW column (antenna2 - antenna1), so the
dirty image is ``Re sum w V exp(-2 pi i (u l + v m + w (n-1)))``.  ducc0's own convention for gridding is
``exp(+2 pi i (u l + v m - w (n-1)))`` (its explicit test gridder), so ducc0 is called with ``flip_u=True,
flip_v=True`` (and ``flip_w=False``): negating u and v of its kernel gives exactly the exponent above.
WSClean and pfb-imaging reach the same sky orientation through their own flip choices.
``divide_by_n=False`` keeps model pixels in Jy.
"""

from __future__ import annotations

import numpy as np

from portaflow.cores.gpu import GPUUnavailableError as GPUUnavailableError  # re-exported: the radio API raises it

from .geometry import Backend as Backend, ImageGeometry as ImageGeometry  # re-exported: the radio API takes them

# ducc0's flips that turn its kernel into this core's (= real Measurement Sets') sign convention
DUCC0_FLIPS = {"flip_u": True, "flip_v": True, "flip_w": False}


def cpu_vis2dirty(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, wgt: np.ndarray | None,
                  geom: ImageGeometry, nthreads: int = 1) -> np.ndarray:
    """Weighted adjoint DFT ``sum_k w_k V_k exp(-2 pi i (u l + v m + w (n-1)))`` (real part) via ducc0.

    ``nthreads`` is passed explicitly because Dask workers set OMP_NUM_THREADS=1 and ducc0 would
    otherwise pick a thread count that ignores the worker's share of the machine.
    """
    import ducc0.wgridder as wg

    vis = np.ascontiguousarray(vis, dtype=np.complex128)
    if wgt is not None:
        wgt = np.ascontiguousarray(wgt, dtype=np.float64)
    return wg.vis2dirty(uvw=np.ascontiguousarray(uvw, dtype=np.float64), freq=np.asarray(freq, np.float64),
                        vis=vis, wgt=wgt, npix_x=geom.npix, npix_y=geom.npix, pixsize_x=geom.cell,
                        pixsize_y=geom.cell, epsilon=geom.epsilon, do_wgridding=geom.do_wgridding,
                        nthreads=max(1, int(nthreads)), **DUCC0_FLIPS, divide_by_n=False)


def cpu_dirty2vis(uvw: np.ndarray, freq: np.ndarray, dirty: np.ndarray, geom: ImageGeometry,
                  nthreads: int = 1) -> np.ndarray:
    """Forward DFT ``V_k = sum_lm I(l,m) exp(+2 pi i (u l + v m + w (n-1)))`` via ducc0 (adjoint of the above)."""
    import ducc0.wgridder as wg

    return wg.dirty2vis(uvw=np.ascontiguousarray(uvw, dtype=np.float64), freq=np.asarray(freq, np.float64),
                        dirty=np.ascontiguousarray(dirty, dtype=np.float64), pixsize_x=geom.cell,
                        pixsize_y=geom.cell, epsilon=geom.epsilon, do_wgridding=geom.do_wgridding,
                        nthreads=max(1, int(nthreads)), **DUCC0_FLIPS, divide_by_n=False)


CPU_BACKEND = Backend("cpu", cpu_vis2dirty, cpu_dirty2vis)


def get_backend(device: str) -> Backend:
    """Return the gridder for ``device`` ("cpu" or "gpu"); the GPU one is checked before it is returned."""
    if device == "cpu":
        return CPU_BACKEND
    if device == "gpu":
        from .gpu import gpu_backend

        return gpu_backend()
    raise ValueError(f"device must be 'cpu' or 'gpu', not {device!r}")
