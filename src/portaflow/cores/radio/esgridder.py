"""Array-library-generic w-gridder with an exponential-of-semicircle (ES) kernel.

Why generic: the GPU path must meet the same accuracy as ducc0, but no GPU is available where the
core is developed and tested.  The algorithm below is written once against an array module ``xp``
(numpy or cupy; only ``asarray``, ``bincount``, ``fft``, elementwise maths, gather and reductions are
used), so the tests run exactly this code with numpy against an independent direct DFT, and the GPU
backend (:mod:`.gpu`) runs the same code with ``xp = cupy``.

Method (Arras et al. 2021, A&A 646 A58, "improved w-stacking"): visibilities are spread with a
separable ES kernel onto an oversampled uv grid (factor 2) *and* onto w planes spaced by ``dw``; each
plane is FFT'd and multiplied by its w screen; at the end the image is divided by the kernel's Fourier
transform in u, v and w.  Negative w are mirrored (Hermitian symmetry) so only w >= 0 is gridded.
Signs: gridding computes ``Re sum_k wgt_k V_k exp(-2 pi i (u l + v m + w (n-1)))``; degridding is its
adjoint ``V_k = sum_lm I exp(+2 pi i (u l + v m + w (n-1)))`` (same as the ducc0 backend and real
Measurement Sets).  The kernel below is written for the opposite exponent, so the uvw are negated once on
entry (:data:`UVW_SIGN`), the equivalent of ducc0's ``flip_u``/``flip_v``/``flip_w`` all set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import C_LIGHT
from .geometry import ImageGeometry

SIGMA = 2.0  # oversampling factor of the uv grid and of the w planes
MAX_SPREAD_ELEMENTS = 1 << 23  # bound on (visibilities x kernel taps) held at once
UVW_SIGN = -1.0  # the kernel grids with exp(+2 pi i ...); the data convention is exp(-2 pi i ...) for imaging


@dataclass(frozen=True)
class ESKernel:
    """ES kernel ``phi(t) = exp(beta (sqrt(1 - (2t/W)^2) - 1))`` on ``|t| <= W/2`` grid cells."""

    support: int
    beta: float

    @classmethod
    def for_epsilon(cls, epsilon: float) -> ESKernel:
        """Support and shape for a requested relative accuracy (sigma = 2; beta = 2.3 W as in FINUFFT).

        Two extra taps over FINUFFT's 1D rule pay for the three kernel dimensions (u, v, w)."""
        support = int(min(16, max(4, math.ceil(math.log10(1.0 / epsilon)) + 2)))
        return cls(support, 2.30 * support)

    def fourier(self, xi: np.ndarray) -> np.ndarray:
        """``phi_hat(xi) = integral phi(t) exp(-2 pi i t xi) dt`` (real, even) by Gauss-Legendre quadrature."""
        nodes, weights = np.polynomial.legendre.leggauss(4 * self.support + 100)
        phi = np.exp(self.beta * (np.sqrt(1.0 - nodes**2) - 1.0))
        half = self.support / 2.0
        xi = np.asarray(xi, dtype=np.float64)
        out = np.cos(2 * np.pi * half * nodes[None, :] * xi.reshape(-1, 1)) @ (weights * phi)
        return (half * out).reshape(xi.shape)


def _taps(xp: Any, coord: Any, kernel: ESKernel) -> tuple[Any, Any]:
    """Grid indices (n, W), not yet wrapped, and kernel values (n, W) of each coordinate (grid cells)."""
    half = kernel.support / 2.0
    cells = xp.ceil(coord - half)[:, None] + xp.arange(kernel.support)[None, :]
    x = (cells - coord[:, None]) / half  # in [-1, 1)
    values = xp.exp(kernel.beta * (xp.sqrt(xp.maximum(1.0 - x * x, 0.0)) - 1.0))
    return cells.astype(xp.int64), values


@dataclass
class _Prepared:
    """Flattened, mirrored, plane-sorted visibility coordinates shared by gridding and degridding."""

    u: Any  # grid cells
    v: Any
    t: Any  # w position in plane units
    first_plane: Any  # int, sorted ascending
    conj: Any  # bool: mirrored sample
    w: Any  # wavelengths (mirrored, >= 0)
    order: Any  # index into the flattened (row, chan) samples
    nplanes: int
    wgrid: bool  # w planes in use (else w is ignored)
    plane_w: np.ndarray  # w of each plane
    dw: float
    shift: float  # n-1 offset: n1' = n1 + shift, |n1'| <= nmax/2


def _n_minus_one(npix: int, cell: float) -> np.ndarray:
    coords = (np.arange(npix) - npix // 2) * cell
    l2 = coords[:, None] ** 2 + coords[None, :] ** 2
    return -l2 / (np.sqrt(1.0 - l2) + 1.0)  # sqrt(1-l2)-1 without cancellation


def _prepare(xp: Any, uvw: Any, freq: Any, active: Any, geom: ImageGeometry, kernel: ESKernel, nu: int) -> _Prepared:
    scale = UVW_SIGN * freq / C_LIGHT
    idx = xp.nonzero(active.ravel())[0]
    rows, chans = idx // freq.shape[0], idx % freq.shape[0]
    u = uvw[rows, 0] * scale[chans]
    v = uvw[rows, 1] * scale[chans]
    w = uvw[rows, 2] * scale[chans]
    conj = w < 0
    sign = xp.where(conj, -1.0, 1.0)
    u, v, w = u * sign, v * sign, w * sign
    # pixels sit at integer multiples of cell, so exp(2 pi i u l) is periodic in u with period 1/cell:
    # folding u*cell into [-1/2, 1/2) is exact and keeps every kernel inside the (2x oversampled) grid
    uc, vc = u * geom.cell, v * geom.cell
    gu, gv = (uc - xp.round(uc)) * nu, (vc - xp.round(vc)) * nu
    nm1 = _n_minus_one(geom.npix, geom.cell)
    nmax = float(-nm1.min())
    if geom.do_wgridding and nmax > 0 and idx.size:
        shift = nmax / 2.0
        dw = 1.0 / (SIGMA * nmax)
        wmin = float(w.min())
        t = (w - wmin) / dw
        first = xp.ceil(t - kernel.support / 2.0).astype(xp.int64)
        pmin = int(first.min())
        first = first - pmin
        t = t - pmin
        nplanes = int(first.max()) + kernel.support
        plane_w = wmin + (np.arange(nplanes) + pmin) * dw
    else:
        shift, dw = 0.0, 1.0
        t = xp.zeros_like(w)
        first = xp.zeros(w.shape, dtype=xp.int64)
        nplanes, plane_w = 1, np.zeros(1)
    order = xp.argsort(first, kind="stable") if xp is np else xp.argsort(first)
    return _Prepared(gu[order], gv[order], t[order], first[order], conj[order], w[order], idx[order], nplanes,
                     bool(geom.do_wgridding and nmax > 0 and idx.size), plane_w, dw, shift)


def _corrections(geom: ImageGeometry, kernel: ESKernel, nu: int, prep: _Prepared) -> tuple[np.ndarray, np.ndarray]:
    """Image-domain divisor (kernel FTs in u, v, w) and the shifted n-1 of every pixel."""
    x = (np.arange(geom.npix) - geom.npix // 2) / nu
    cu = kernel.fourier(x)
    corr = cu[:, None] * cu[None, :]
    nm1s = _n_minus_one(geom.npix, geom.cell) + prep.shift
    if prep.wgrid:
        corr = corr * kernel.fourier(prep.dw * nm1s)
    return corr, nm1s


def _plane_slices(xp: Any, prep: _Prepared, support: int) -> list[tuple[int, int, int]]:
    """(plane, start, stop) ranges of the plane-sorted samples touching each plane."""
    first = prep.first_plane
    planes = np.arange(prep.nplanes)
    starts = xp.searchsorted(first, xp.asarray(planes - support + 1), side="left")
    stops = xp.searchsorted(first, xp.asarray(planes), side="right")
    starts, stops = _host(xp, starts), _host(xp, stops)
    return [(int(p), int(a), int(b)) for p, a, b in zip(planes, starts, stops, strict=True) if b > a]


def _host(xp: Any, a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") and xp is not np else np.asarray(a)


def _image_index(npix: int, nu: int) -> np.ndarray:
    return (np.arange(npix) - npix // 2) % nu


def vis2dirty(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, wgt: np.ndarray | None, geom: ImageGeometry,
              xp: Any = np) -> np.ndarray:
    """Dirty image ``Re sum wgt V exp(-2 pi i (u l + v m + w (n-1)))`` (numpy in, numpy out)."""
    kernel = ESKernel.for_epsilon(geom.epsilon)
    nu = int(2 * math.ceil(SIGMA * geom.npix / 2))
    d_uvw, d_freq = xp.asarray(uvw, dtype=xp.float64), xp.asarray(freq, dtype=xp.float64)
    d_vis = xp.asarray(vis, dtype=xp.complex128)
    if wgt is not None:
        d_vis = d_vis * xp.asarray(wgt, dtype=xp.float64)
    active = d_vis != 0
    prep = _prepare(xp, d_uvw, d_freq, active, geom, kernel, nu)
    values = d_vis.ravel()[prep.order]
    values = xp.where(prep.conj, xp.conj(values), values) * xp.exp(-2j * np.pi * prep.w * prep.shift)
    corr, nm1s = _corrections(geom, kernel, nu, prep)
    d_nm1s = xp.asarray(nm1s)
    pick = xp.asarray(_image_index(geom.npix, nu))
    image = xp.zeros((geom.npix, geom.npix), dtype=xp.float64)
    chunk = max(1, MAX_SPREAD_ELEMENTS // kernel.support**2)
    for plane, start, stop in _plane_slices(xp, prep, kernel.support):
        grid_re = xp.zeros(nu * nu, dtype=xp.float64)
        grid_im = xp.zeros(nu * nu, dtype=xp.float64)
        for a in range(start, stop, chunk):
            b = min(stop, a + chunk)
            k = plane - prep.first_plane[a:b]
            tw = (k - (prep.t[a:b] - prep.first_plane[a:b])) / (kernel.support / 2.0) if prep.wgrid else None
            val = values[a:b]
            if tw is not None:
                val = val * xp.exp(kernel.beta * (xp.sqrt(xp.maximum(1.0 - tw * tw, 0.0)) - 1.0))
            iu, ku = _taps(xp, prep.u[a:b], kernel)
            iv, kv = _taps(xp, prep.v[a:b], kernel)
            index = ((iu % nu)[:, :, None] * nu + (iv % nu)[:, None, :]).ravel()
            contrib = (val[:, None, None] * ku[:, :, None] * kv[:, None, :]).ravel()
            grid_re += xp.bincount(index, weights=contrib.real, minlength=nu * nu)
            grid_im += xp.bincount(index, weights=contrib.imag, minlength=nu * nu)
        grid = (grid_re + 1j * grid_im).reshape(nu, nu)
        plane_image = xp.fft.ifft2(grid)[pick[:, None], pick[None, :]] * (nu * nu)
        if prep.wgrid:
            plane_image = plane_image * xp.exp(2j * np.pi * float(prep.plane_w[plane]) * d_nm1s)
        image += plane_image.real
    return _host(xp, image / xp.asarray(corr))


def dirty2vis(uvw: np.ndarray, freq: np.ndarray, dirty: np.ndarray, geom: ImageGeometry, xp: Any = np) -> np.ndarray:
    """Visibilities ``sum_lm I exp(+2 pi i (u l + v m + w (n-1)))`` for every (row, chan) (numpy in/out)."""
    kernel = ESKernel.for_epsilon(geom.epsilon)
    nu = int(2 * math.ceil(SIGMA * geom.npix / 2))
    d_uvw, d_freq = xp.asarray(uvw, dtype=xp.float64), xp.asarray(freq, dtype=xp.float64)
    nrow, nchan = uvw.shape[0], freq.shape[0]
    active = xp.ones((nrow, nchan), dtype=bool)
    prep = _prepare(xp, d_uvw, d_freq, active, geom, kernel, nu)
    corr, nm1s = _corrections(geom, kernel, nu, prep)
    model = xp.asarray(np.asarray(dirty, dtype=np.float64) / corr)
    d_nm1s = xp.asarray(nm1s)
    pick = xp.asarray(_image_index(geom.npix, nu))
    out = xp.zeros(prep.u.shape[0], dtype=xp.complex128)
    chunk = max(1, MAX_SPREAD_ELEMENTS // kernel.support**2)
    for plane, start, stop in _plane_slices(xp, prep, kernel.support):
        screen = model * xp.exp(-2j * np.pi * float(prep.plane_w[plane]) * d_nm1s) if prep.wgrid \
            else model.astype(xp.complex128)
        padded = xp.zeros((nu, nu), dtype=xp.complex128)
        padded[pick[:, None], pick[None, :]] = screen
        grid = xp.fft.fft2(padded).ravel()
        for a in range(start, stop, chunk):
            b = min(stop, a + chunk)
            iu, ku = _taps(xp, prep.u[a:b], kernel)
            iv, kv = _taps(xp, prep.v[a:b], kernel)
            index = (iu % nu)[:, :, None] * nu + (iv % nu)[:, None, :]
            val = (grid[index] * ku[:, :, None] * kv[:, None, :]).sum(axis=(1, 2))
            if prep.wgrid:
                k = plane - prep.first_plane[a:b]
                tw = (k - (prep.t[a:b] - prep.first_plane[a:b])) / (kernel.support / 2.0)
                val = val * xp.exp(kernel.beta * (xp.sqrt(xp.maximum(1.0 - tw * tw, 0.0)) - 1.0))
            out[a:b] += val
    out = out * xp.exp(2j * np.pi * prep.w * prep.shift)
    out = xp.where(prep.conj, xp.conj(out), out)
    vis = xp.zeros(nrow * nchan, dtype=xp.complex128)
    vis[prep.order] = out
    return _host(xp, vis.reshape(nrow, nchan))
