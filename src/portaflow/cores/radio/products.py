"""Image products: FITS with a celestial WCS, PNG previews, JSON summaries.

Orientation: in memory an image is ``img[i, j]`` at ``l = (i - N/2) cell`` (east), ``m = (j - N/2) cell``
(north), as ducc0 returns it.  FITS wants ``data[y, x]`` with RA increasing to the left (CDELT1 < 0),
so the array is written as ``img[::-1, :].T``: FITS pixel x = N-1-i, y = j, which puts the phase centre
at CRPIX1 = N/2, CRPIX2 = N/2 + 1 (1-based).  :func:`fits_pixel` does the same mapping for positions.
All outputs are deterministic: no dates in FITS headers or PNG metadata, sorted JSON keys.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .clean import Beam


def image_wcs(npix: int, cell: float, phase_centre: tuple[float, float]) -> Any:
    """astropy WCS of an npix x npix SIN-projected image with cell ``cell`` radians about ``phase_centre``."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [math.degrees(phase_centre[0]), math.degrees(phase_centre[1])]
    w.wcs.crpix = [npix / 2, npix / 2 + 1]
    w.wcs.cdelt = [-math.degrees(cell), math.degrees(cell)]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    return w


def to_fits_array(img: np.ndarray) -> np.ndarray:
    """In-memory (l, m) image -> FITS (y, x) array with RA to the left."""
    return np.ascontiguousarray(np.asarray(img)[::-1, :].T)


def fits_pixel(i: float, j: float, npix: int) -> tuple[float, float]:
    """0-based FITS (x, y) of in-memory pixel (i, j)."""
    return float(npix - 1 - i), float(j)


def write_fits(path: str, img: np.ndarray, cell: float, phase_centre: tuple[float, float], bunit: str,
               beam: Beam | None = None, freq_hz: float | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write a 2D FITS image with celestial WCS and (optionally) the restoring beam (BMAJ/BMIN/BPA, deg)."""
    from astropy.io import fits

    npix = img.shape[0]
    header = image_wcs(npix, cell, phase_centre).to_header()
    header["BUNIT"] = bunit
    header["BTYPE"] = "Intensity"
    if beam is not None:
        bmaj, bmin, bpa = beam.in_degrees(cell)
        header["BMAJ"], header["BMIN"], header["BPA"] = bmaj, bmin, bpa
    if freq_hz is not None:
        header["OBSFREQ"] = (float(freq_hz), "[Hz] mean frequency (MFS image)")
    for key, value in (extra or {}).items():
        header[key] = value
    header["ORIGIN"] = "portaflow.cores.radio"
    hdu = fits.PrimaryHDU(data=to_fits_array(img).astype(np.float32), header=header)
    hdu.writeto(path, overwrite=True, output_verify="exception")


def write_png(path: str, img: np.ndarray, cell: float, phase_centre: tuple[float, float], title: str,
              unit: str = "Jy/beam", sources: list[dict[str, Any]] | None = None) -> None:
    """PNG preview with RA/Dec axes and a colour bar (object-oriented Matplotlib: no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    npix = img.shape[0]
    data = to_fits_array(img)
    fig = Figure(figsize=(7.5, 6.0), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.17, right=0.95)
    ax = fig.add_subplot(1, 1, 1, projection=image_wcs(npix, cell, phase_centre))
    lo, hi = float(np.percentile(data, 0.5)), float(data.max())
    im = ax.imshow(data, origin="lower", cmap="inferno", vmin=lo, vmax=max(hi, lo + 1e-12))
    ax.set_xlabel("Right Ascension (ICRS)")
    ax.set_ylabel("Declination (ICRS)")
    ax.set_title(title)
    for src in sources or []:
        x, y = src["x"], src["y"]
        ax.plot([x], [y], marker="o", markersize=12, markerfacecolor="none", markeredgecolor="cyan")
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(unit)
    fig.savefig(path, format="png", metadata={"Software": None})


def write_json(path: str, summary: dict[str, Any]) -> None:
    """Deterministic JSON (sorted keys, no timestamps)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")


def robust_rms(img: np.ndarray) -> float:
    """1.4826 x median absolute deviation: an rms that bright sources do not inflate."""
    med = float(np.median(img))
    return float(1.4826 * np.median(np.abs(img - med)))


def source_table(sources: list[dict[str, Any]], npix: int, cell: float, phase_centre: tuple[float, float]) -> list[dict[str, Any]]:
    """Add FITS pixel positions and RA/Dec (degrees, via the WCS) to sources found in (i, j)."""
    wcs = image_wcs(npix, cell, phase_centre)
    out = []
    for src in sources:
        x, y = fits_pixel(src["i"], src["j"], npix)
        ra, dec = wcs.wcs_pix2world([[x, y]], 0)[0]
        out.append({"flux_jy": round(float(src["flux"]), 9), "x": round(x, 4), "y": round(y, 4),
                    "ra_deg": round(float(ra), 9), "dec_deg": round(float(dec), 9),
                    "ncomponents": int(src["ncomponents"])})
    return out
