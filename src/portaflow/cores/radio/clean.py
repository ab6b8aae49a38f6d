"""Deconvolution: Hogbom CLEAN minor cycles inside Cotton-Schwab major cycles, beam fit, restoration.

Minor cycles work on images only (fast, approximate: a PSF patch that ignores w-dependent PSF changes
and far sidelobes); major cycles recompute the residual exactly from the visibilities (degrid the
model, subtract, grid) through a :class:`~.imaging.VisibilityImager`, so the approximations of the
minor cycle never accumulate.  The peak search keeps a per-tile maximum of |residual| and refreshes only
the tiles a subtraction touched, so one iteration costs about the patch area instead of the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Beam:
    """Restoring beam: FWHM major/minor axes in pixels, position angle in degrees (north through east)."""

    bmaj_pix: float
    bmin_pix: float
    bpa_deg: float

    def in_degrees(self, cell: float) -> tuple[float, float, float]:
        """(BMAJ, BMIN, BPA) in degrees as FITS headers want them, for a cell of ``cell`` radians."""
        scale = math.degrees(cell)
        return self.bmaj_pix * scale, self.bmin_pix * scale, self.bpa_deg


@dataclass
class CleanResult:
    """Everything a CLEAN run produces (images in the in-memory ducc0 orientation)."""

    model: np.ndarray
    residual: np.ndarray
    restored: np.ndarray
    dirty: np.ndarray
    psf: np.ndarray
    beam: Beam
    iterations: int
    major_cycles: int
    stop_reason: str
    history: list[dict[str, float]] = field(default_factory=list)


def hogbom(residual: np.ndarray, psf: np.ndarray, gain: float = 0.1, threshold: float = 0.0, niter: int = 1000,
           patch_half: int | None = None, tile: int = 32, mask: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """Hogbom minor cycles: return (component image, updated residual, iterations done).

    Each iteration takes the largest |residual| (inside ``mask`` when given), adds ``gain * peak`` to
    the model there and subtracts the same multiple of the PSF, centred on the peak, over a patch of
    half-size ``patch_half`` (None: the whole PSF).  Stops after ``niter`` iterations or when the peak
    falls to ``threshold``.  The PSF's centre is pixel (n0//2, n1//2).
    """
    res = np.array(residual, dtype=np.float64, copy=True)
    psf = np.asarray(psf, dtype=np.float64)
    n0, n1 = res.shape
    pc0, pc1 = psf.shape[0] // 2, psf.shape[1] // 2
    half = max(psf.shape) if patch_half is None else int(patch_half)
    weight = None if mask is None else np.asarray(mask, dtype=np.float64)
    t0, t1 = -(-n0 // tile), -(-n1 // tile)
    absr = np.zeros((t0 * tile, t1 * tile))
    absr[:n0, :n1] = np.abs(res) if weight is None else np.abs(res) * weight
    tilemax = absr.reshape(t0, tile, t1, tile).max(axis=(1, 3))  # padding stays 0: never a peak
    model = np.zeros_like(res)
    # tiles pay off when a subtraction touches a small part of the image; for (near) full-PSF
    # subtraction a plain argmax over the maintained |residual| is cheaper
    use_tiles = (2 * half + 1) ** 2 * 4 < n0 * n1
    done = 0
    for _ in range(int(niter)):
        if use_tiles:
            a, b = divmod(int(np.argmax(tilemax)), t1)
            block = absr[a * tile:(a + 1) * tile, b * tile:(b + 1) * tile]
            q = int(np.argmax(block))
            i, j = a * tile + q // tile, b * tile + q % tile
        else:
            i, j = divmod(int(np.argmax(absr)), absr.shape[1])
        peak = res[i, j]
        if absr[i, j] <= threshold or absr[i, j] == 0.0:
            break
        comp = gain * peak
        model[i, j] += comp
        r0, r1 = max(0, i - half, i - pc0), min(n0, i + half + 1, i - pc0 + psf.shape[0])
        c0, c1 = max(0, j - half, j - pc1), min(n1, j + half + 1, j - pc1 + psf.shape[1])
        sub = res[r0:r1, c0:c1]
        sub -= comp * psf[r0 - i + pc0:r1 - i + pc0, c0 - j + pc1:c1 - j + pc1]
        np.abs(sub, out=absr[r0:r1, c0:c1])
        if weight is not None:
            absr[r0:r1, c0:c1] *= weight[r0:r1, c0:c1]
        if not use_tiles:
            done += 1
            continue
        ta0, ta1, tb0, tb1 = r0 // tile, (r1 - 1) // tile + 1, c0 // tile, (c1 - 1) // tile + 1
        # a strided view split into tiles (no copy), reduced over the in-tile axes
        np.max(absr[ta0 * tile:ta1 * tile, tb0 * tile:tb1 * tile].reshape(ta1 - ta0, tile, tb1 - tb0, tile),
               axis=(1, 3), out=tilemax[ta0:ta1, tb0:tb1])
        done += 1
    return model, res, done


def _gauss(dl: np.ndarray, dm: np.ndarray, smaj: float, smin: float, pa: float) -> np.ndarray:
    """Unit-peak elliptical Gaussian; axis 0 is l (east), axis 1 is m (north); ``pa`` radians N through E."""
    xmaj = dl * math.sin(pa) + dm * math.cos(pa)
    xmin = dl * math.cos(pa) - dm * math.sin(pa)
    return np.exp(-0.5 * ((xmaj / smaj) ** 2 + (xmin / smin) ** 2))


def fit_beam(psf: np.ndarray, level: float = 0.35) -> Beam:
    """Fit a unit-peak 2D Gaussian to the PSF main lobe (pixels above ``level`` connected to the centre).

    Why a fit and not the FWHM along the axes: the synthesised beam is elliptical and rotated with
    declination and uv coverage; the fitted Gaussian is the conventional restoring beam (as in CASA)."""
    from scipy import ndimage, optimize

    c0, c1 = psf.shape[0] // 2, psf.shape[1] // 2
    h = min(c0, c1, 64)
    win = np.asarray(psf[c0 - h:c0 + h + 1, c1 - h:c1 + h + 1], dtype=np.float64)
    labels, _ = ndimage.label(win > level)
    lobe = labels == labels[h, h]
    dl, dm = np.nonzero(lobe)
    dl, dm = (dl - h).astype(float), (dm - h).astype(float)
    vals = win[lobe]
    # initial guess from second moments of the lobe
    wsum = vals.sum()
    cov = np.array([[np.sum(vals * dl * dl), np.sum(vals * dl * dm)], [np.sum(vals * dl * dm), np.sum(vals * dm * dm)]]) / wsum
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, 1]
    s0 = max(0.5, math.sqrt(max(evals[1], 0.25)) * 1.5)
    s1 = max(0.5, math.sqrt(max(evals[0], 0.25)) * 1.5)
    pa0 = math.atan2(major[0], major[1])

    def resid(p: np.ndarray) -> np.ndarray:
        return _gauss(dl, dm, p[0], p[1], p[2]) - vals

    fit = optimize.least_squares(resid, x0=[s0, s1, pa0], bounds=([0.1, 0.1, -4 * math.pi], [10 * h, 10 * h, 4 * math.pi]))
    smaj, smin, pa = (float(x) for x in fit.x)
    if smin > smaj:
        smaj, smin, pa = smin, smaj, pa + math.pi / 2
    pa_deg = (math.degrees(pa) + 90.0) % 180.0 - 90.0
    return Beam(smaj * FWHM_PER_SIGMA, smin * FWHM_PER_SIGMA, pa_deg)


def beam_kernel(beam: Beam, max_half: int) -> np.ndarray:
    """Unit-peak pixelised restoring beam of odd size (out to 5 sigma, at most ``max_half`` pixels)."""
    smaj, smin = beam.bmaj_pix / FWHM_PER_SIGMA, beam.bmin_pix / FWHM_PER_SIGMA
    half = int(min(max_half, math.ceil(5 * smaj)))
    x = np.arange(-half, half + 1, dtype=float)
    return _gauss(x[:, None], x[None, :], smaj, smin, math.radians(beam.bpa_deg))


def restore(model: np.ndarray, residual: np.ndarray, beam: Beam) -> np.ndarray:
    """Restored image: model convolved with the (unit-peak) beam plus the residual, in Jy/beam."""
    kernel = beam_kernel(beam, min(model.shape) // 2 - 1)
    return convolve_same(model, kernel) + residual


def convolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear (zero-padded) convolution with an odd-sized centred kernel, cropped to the image size.

    scipy.fft rather than scipy.signal: the latter costs seconds to import in every fresh step process."""
    import scipy.fft as sfft

    k0, k1 = kernel.shape
    shape = (image.shape[0] + k0 - 1, image.shape[1] + k1 - 1)
    fshape = tuple(sfft.next_fast_len(n, real=True) for n in shape)
    full = sfft.irfft2(sfft.rfft2(image, fshape) * sfft.rfft2(kernel, fshape), fshape)
    h0, h1 = k0 // 2, k1 // 2
    return full[h0:h0 + image.shape[0], h1:h1 + image.shape[1]]


def psf_sidelobe_outside(psf: np.ndarray, patch_half: int | None) -> float:
    """Largest |PSF| outside the patch: how far a patch-limited minor cycle may be trusted (Clark)."""
    if patch_half is None or patch_half >= max(psf.shape) // 2:
        return 0.0
    c0, c1 = psf.shape[0] // 2, psf.shape[1] // 2
    outside = np.abs(psf).copy()
    outside[max(0, c0 - patch_half):c0 + patch_half + 1, max(0, c1 - patch_half):c1 + patch_half + 1] = 0.0
    return float(outside.max())


def cotton_schwab(imager: Any, niter: int = 1000, gain: float = 0.1, threshold: float = 0.0,
                  threshold_rel: float = 1e-3, mgain: float = 0.8, max_major: int = 20,
                  patch_half: int | None = None, log: Callable[[str], None] | None = None) -> CleanResult:
    """Cotton-Schwab CLEAN with an imager providing ``psf()``, ``dirty()`` and ``residual(model)``.

    Stops at ``niter`` minor iterations in total, when the residual peak falls to
    ``max(threshold, threshold_rel * dirty peak)``, or after ``max_major`` major cycles.  Each minor
    cycle stops when the peak fell by ``mgain`` or to the far-sidelobe level of a truncated PSF patch."""
    psf = imager.psf()
    beam = fit_beam(psf)
    dirty = imager.dirty()
    residual = dirty.copy()
    model = np.zeros_like(dirty)
    limit = max(float(threshold), float(threshold_rel) * float(np.abs(dirty).max()))
    sidelobe = psf_sidelobe_outside(psf, patch_half)
    done, major, reason = 0, 0, "niter"
    history: list[dict[str, float]] = []
    while True:
        peak = float(np.abs(residual).max())
        history.append({"major_cycle": major, "iterations": done, "residual_peak": peak})
        if log:
            log(f"major cycle {major}: {done} iterations, residual peak {peak:.6g}")
        if peak <= limit:
            reason = "threshold"
            break
        if done >= niter:
            reason = "niter"
            break
        if major >= max_major:
            reason = "max_major"
            break
        minor_limit = max(limit, (1.0 - mgain) * peak, sidelobe * peak)
        delta, _, n = hogbom(residual, psf, gain, minor_limit, niter - done, patch_half)
        if n == 0:
            reason = "stalled"
            break
        model += delta
        done += n
        major += 1
        residual = imager.residual(model)
    return CleanResult(model=model, residual=residual, restored=restore(model, residual, beam), dirty=dirty,
                       psf=psf, beam=beam, iterations=done, major_cycles=major, stop_reason=reason, history=history)


def find_sources(model: np.ndarray, beam: Beam, min_flux: float, signed: bool = False) -> list[dict[str, float]]:
    """Group CLEAN components into sources (greedy, brightest first, radius max(1.5, beam FWHM) pixels).

    Returns flux (sum of the group's components), the flux-weighted centroid ``(i, j)`` and the
    brightest component's pixel, brightest source first; groups below ``min_flux`` are dropped.  ``signed``
    (Stokes Q, U, V, whose sources may be negative): keep and order groups by the absolute value of their flux."""
    ii, jj = np.nonzero(model)
    flux = model[ii, jj]
    order = np.argsort(-np.abs(flux), kind="stable")
    radius = max(1.5, beam.bmaj_pix)
    seeds: list[tuple[int, int]] = []
    members: list[list[int]] = []
    for k in order:
        if seeds:
            s = np.asarray(seeds)
            dist = np.hypot(s[:, 0] - ii[k], s[:, 1] - jj[k])
            best = int(np.argmin(dist))
            if dist[best] <= radius:
                members[best].append(int(k))
                continue
        seeds.append((int(ii[k]), int(jj[k])))
        members.append([int(k)])
    sources = []
    for (si, sj), idx in zip(seeds, members, strict=True):
        f = flux[idx]
        total = float(f.sum())
        if (abs(total) if signed else total) < min_flux:
            continue
        wts = np.abs(f)
        sources.append({"flux": total, "i": float(np.sum(wts * ii[idx]) / wts.sum()),
                        "j": float(np.sum(wts * jj[idx]) / wts.sum()), "peak_i": si, "peak_j": sj,
                        "ncomponents": len(idx)})
    sources.sort(key=lambda s: -abs(s["flux"]) if signed else -s["flux"])
    return sources
