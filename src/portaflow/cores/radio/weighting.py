"""Imaging weights: natural, uniform and Briggs (robust), as CASA tclean and WSClean define them.

Why here and not in the gridder: uniform and Briggs weights depend on how much weight falls in each cell
of the uv grid over the *whole* selection, so they are computed once, in the process that read the data,
before the visibilities are partitioned over Dask workers (each partition then carries its final weights).

Definitions (CASA "Data Weighting", Briggs 1995; WSClean's ImageWeights follow the same formulas):

* natural: ``W_i = w_i`` (the data weights, zero for flagged samples);
* uniform: ``W_i = w_i / D_k`` with ``D_k`` the sum of the data weights in the uv cell ``k`` of sample ``i``;
* Briggs:  ``W_i = w_i / (1 + D_k f^2)`` with ``f^2 = (5 * 10^-R)^2 / (sum_k D_k^2 / sum_i w_i)``, robust ``R``
  in [-2, 2] (-2 close to uniform, +2 close to natural).

Selection and taper (WSClean's ``-minuv-l``, ``-maxuv-l`` and ``-taper-gaussian``; CASA's ``uvrange`` and
``uvtaper``): a sample whose uv distance ``sqrt(u^2 + v^2)`` in wavelengths (at its own channel's frequency; w is
ignored) lies outside ``[minuv_l, maxuv_l]`` is dropped before the weighting (it counts in no uv cell); the
Gaussian taper then multiplies every imaging weight by ``exp(-2 pi^2 sigma^2 (u^2 + v^2))`` with
``sigma = FWHM / (2 sqrt(2 ln 2))`` radians: the Fourier pair of an image-plane Gaussian of that FWHM, so the
tapered beam approaches a Gaussian of the given size as WSClean's documentation says.

The uv grid is the one the image's FFT implies: ``npix`` x ``npix`` cells of ``1 / (npix * cell)``
wavelengths.  A visibility and its conjugate fall in mirrored cells; both count (a sample is binned
at (u, v) folded onto v >= 0), so a baseline and its reverse share one cell as the sky's Hermitian
symmetry requires.
"""

from __future__ import annotations

import math

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


def uv_distance(uvw: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """(nrow, nchan) sqrt(u^2 + v^2) in wavelengths at each channel's frequency."""
    return np.hypot(uvw[:, 0:1], uvw[:, 1:2]) * (np.asarray(freq, dtype=np.float64)[None, :] / C_LIGHT)


def gaussian_taper(uvw: np.ndarray, freq: np.ndarray, fwhm: float) -> np.ndarray:
    """(nrow, nchan) uv-plane Gaussian whose image-plane Fourier pair has a FWHM of ``fwhm`` radians."""
    sigma = float(fwhm) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return np.exp(-2.0 * math.pi**2 * sigma**2 * uv_distance(uvw, freq) ** 2)


def imaging_weights(uvw: np.ndarray, freq: np.ndarray, natural: np.ndarray, geom: ImageGeometry,
                    scheme: str = "natural", robust: float = 0.0, minuv_l: float = 0.0, maxuv_l: float = 0.0,
                    taper_fwhm: float = 0.0) -> np.ndarray:
    """(nrow, nchan) float64 imaging weights from the natural ones (data weights, 0 where flagged).

    ``minuv_l``/``maxuv_l`` (wavelengths; 0 = no limit) select samples by uv distance before the weighting;
    ``taper_fwhm`` (radians; 0 = none) applies a Gaussian taper after it (see the module docstring)."""
    if scheme not in SCHEMES:
        raise InputError(f"weighting {scheme!r} is not one of {', '.join(SCHEMES)}")
    if scheme == "briggs" and not -2.0 <= float(robust) <= 2.0:
        raise InputError(f"robust {robust} is outside [-2, 2]")
    if minuv_l < 0 or maxuv_l < 0 or taper_fwhm < 0:
        raise InputError(f"minuv_l {minuv_l}, maxuv_l {maxuv_l} and the taper {taper_fwhm} must not be negative")
    if maxuv_l and minuv_l >= maxuv_l:
        raise InputError(f"minuv_l {minuv_l:g} must be below maxuv_l {maxuv_l:g} (wavelengths)")
    natural = np.asarray(natural, dtype=np.float64)
    if minuv_l or maxuv_l:
        dist = uv_distance(uvw, freq)
        keep = (dist >= minuv_l) & ((dist <= maxuv_l) if maxuv_l else True)
        natural = np.where(keep, natural, 0.0)
    weights = _scheme_weights(uvw, freq, natural, geom, scheme, robust)
    if taper_fwhm:
        weights = weights * gaussian_taper(uvw, freq, taper_fwhm)
    return weights


def _scheme_weights(uvw: np.ndarray, freq: np.ndarray, natural: np.ndarray, geom: ImageGeometry,
                    scheme: str, robust: float) -> np.ndarray:
    """Natural, uniform or Briggs weights (CASA's and WSClean's formulas) from selected natural weights."""
    if scheme == "natural":
        return natural.copy()
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
