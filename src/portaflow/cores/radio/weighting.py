"""Imaging weights: natural, uniform and Briggs (robust), as CASA tclean and WSClean define them.

Why here and not in the gridder: uniform and Briggs weights depend on how much weight falls in each cell
of the uv grid over the *whole* selection, so they are computed once, in the process that read the data,
before the visibilities are partitioned over Dask workers (each partition then carries its final weights).

Definitions (CASA "Data Weighting", Briggs 1995; WSClean's ImageWeights follow the same formulas):

* natural: ``W_i = w_i`` (the data weights, zero for flagged samples);
* uniform: ``W_i = w_i / D_k`` with ``D_k`` the sum of the data weights in the uv cell ``k`` of sample ``i``;
* Briggs:  ``W_i = w_i / (1 + D_k f^2)`` with ``f^2 = (5 * 10^-R)^2 / (sum_k D_k^2 / sum_i w_i)``, robust ``R``
  in [-2, 2] (-2 close to uniform, +2 close to natural).

The uv grid is the one the image's FFT implies: ``npix`` x ``npix`` cells of ``1 / (npix * cell)``
wavelengths.  A visibility and its conjugate fall in mirrored cells; both count (a sample is binned
at (u, v) folded onto v >= 0), so a baseline and its reverse share one cell as the sky's Hermitian
symmetry requires.
"""

from __future__ import annotations

import numpy as np

from portaflow.errors import InputError

from . import C_LIGHT
from .geometry import ImageGeometry

SCHEMES = ("natural", "uniform", "briggs")


def uv_cells(uvw: np.ndarray, freq: np.ndarray, geom: ImageGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(nrow, nchan) integer uv-cell indices (iu, iv) of every sample, folded onto v >= 0 (Hermitian)."""
    u = uvw[:, 0:1] * freq[None, :] / C_LIGHT
    v = uvw[:, 1:2] * freq[None, :] / C_LIGHT
    flip = (v < 0) | ((v == 0) & (u < 0))
    u, v = np.where(flip, -u, u), np.where(flip, -v, v)
    du = 1.0 / (geom.npix * geom.cell)
    return np.rint(u / du).astype(np.int64), np.rint(v / du).astype(np.int64)


def imaging_weights(uvw: np.ndarray, freq: np.ndarray, natural: np.ndarray, geom: ImageGeometry,
                    scheme: str = "natural", robust: float = 0.0) -> np.ndarray:
    """(nrow, nchan) float64 imaging weights from the natural ones (data weights, 0 where flagged)."""
    if scheme not in SCHEMES:
        raise InputError(f"weighting {scheme!r} is not one of {', '.join(SCHEMES)}")
    natural = np.asarray(natural, dtype=np.float64)
    if scheme == "natural":
        return natural.copy()
    if scheme == "briggs" and not -2.0 <= float(robust) <= 2.0:
        raise InputError(f"robust {robust} is outside [-2, 2]")
    iu, iv = uv_cells(uvw, freq, geom)
    half = geom.npix // 2
    inside = (np.abs(iu) < half) & (iv < half) & (natural > 0)
    key = np.where(inside, (iu + half) * half + iv, 0)
    density = np.bincount(key[inside], weights=natural[inside], minlength=geom.npix * half)
    d = np.where(inside, density[key], 0.0)
    if scheme == "uniform":
        return np.divide(natural, d, out=np.zeros_like(natural), where=d > 0)
    f2 = (5.0 * 10.0 ** (-float(robust))) ** 2 / (float(np.sum(density**2)) / float(natural[inside].sum()))
    return np.where(inside, natural / (1.0 + d * f2), 0.0)
