"""Image products: FITS with a celestial WCS, PNG previews, JSON summaries.

Orientation: in memory an image is ``img[i, j]`` at ``l = (i - N/2) cell`` (east), ``m = (j - N/2) cell``
(north), as ducc0 returns it.  FITS wants ``data[y, x]`` with RA increasing to the left (CDELT1 < 0),
so the array is written as ``img[::-1, :].T``: FITS pixel x = N-1-i, y = j, which puts the phase centre
at CRPIX1 = N/2, CRPIX2 = N/2 + 1 (1-based).  :func:`fits_pixel` does the same mapping for positions.
All outputs are deterministic: no dates of writing in FITS headers (DATE-OBS is the observation's start) or PNG
metadata, sorted JSON keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .clean import Beam


def image_wcs(npix: int, cell: float, phase_centre: tuple[float, float]) -> Any:
    """astropy WCS of an npix x npix SIN-projected image with cell ``cell`` radians about ``phase_centre``."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [math.degrees(phase_centre[0]) % 360.0, math.degrees(phase_centre[1])]
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


@dataclass(frozen=True)
class ImageInfo:
    """What a FITS header says about the observation besides the pixel grid (all optional).

    ``freq_hz``/``bandwidth_hz``: the image's frequency (MFS: the mean of the imaged channels) and the band it
    covers; ``date_obs``: ISO start of the data; ``history``: how the image was made, one line a card."""

    freq_hz: float | None = None
    bandwidth_hz: float | None = None
    telescope: str = ""
    object_name: str = ""
    date_obs: str = ""
    history: tuple[str, ...] = ()
    stokes: int = 1  # the FITS STOKES axis value: 1 I, 2 Q, 3 U, 4 V


def mjd_seconds_to_isot(seconds: float) -> str:
    """An MS TIME (MJD seconds, UTC) as the ISO date FITS' DATE-OBS holds."""
    import warnings

    from astropy.time import Time

    with warnings.catch_warnings():  # erfa calls years before 1960 or beyond its leap-second table "dubious"
        warnings.simplefilter("ignore")
        return str(Time(float(seconds) / 86_400.0, format="mjd", scale="utc").isot)


def fits_wcs(npix: int, cell: float, phase_centre: tuple[float, float], freq_hz: float,
             bandwidth_hz: float | None, stokes: int = 1) -> Any:
    """The 4-axis WCS CASA and WSClean write: RA---SIN, DEC--SIN, FREQ, STOKES (1..4 = I, Q, U, V), phase centre
    at CRVAL."""
    from astropy.wcs import WCS

    w = WCS(naxis=4)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    w.wcs.cunit = ["deg", "deg", "Hz", ""]
    w.wcs.crval = [math.degrees(phase_centre[0]) % 360.0, math.degrees(phase_centre[1]), float(freq_hz), float(stokes)]
    w.wcs.crpix = [npix / 2, npix / 2 + 1, 1.0, 1.0]
    w.wcs.cdelt = [-math.degrees(cell), math.degrees(cell), float(bandwidth_hz or 1.0), 1.0]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    w.wcs.specsys = "TOPOCENT"
    w.wcs.restfrq = float(freq_hz)
    return w


def write_fits(path: str, img: np.ndarray, cell: float, phase_centre: tuple[float, float], bunit: str,
               beam: Beam | None = None, freq_hz: float | None = None, extra: dict[str, Any] | None = None,
               info: ImageInfo | None = None) -> None:
    """Write a FITS image as CASA and WSClean do: 4 axes (RA---SIN, DEC--SIN, FREQ, STOKES) of shape
    (1, 1, N, N), CRVAL at the phase centre, BUNIT, the restoring beam (BMAJ/BMIN/BPA in degrees; a COMMENT says
    when there is none), RESTFRQ, DATE-OBS, TELESCOP, OBJECT, EQUINOX/RADESYS, and HISTORY lines."""
    from astropy.io import fits

    info = info or ImageInfo(freq_hz=freq_hz)
    freq = info.freq_hz if info.freq_hz is not None else freq_hz
    npix = img.shape[0]
    header = fits_wcs(npix, cell, phase_centre, float(freq or 0.0), info.bandwidth_hz, info.stokes).to_header()
    header["EQUINOX"] = 2000.0  # astropy leaves it out for ICRS; CASA and WSClean readers expect it
    header["BUNIT"] = bunit
    header["BTYPE"] = "Intensity"
    if beam is not None:
        bmaj, bmin, bpa = beam.in_degrees(cell)
        header["BMAJ"], header["BMIN"], header["BPA"] = bmaj, bmin, bpa
    else:
        header["COMMENT"] = "no restoring beam (BMAJ/BMIN/BPA not defined for this image)"
    if freq is not None:
        header["OBSFREQ"] = (float(freq), "[Hz] mean frequency (MFS image)")
    if info.telescope:
        header["TELESCOP"] = info.telescope
    if info.object_name:
        header["OBJECT"] = info.object_name
    if info.date_obs:
        header["DATE-OBS"] = info.date_obs
    for key, value in (extra or {}).items():
        header[key] = value
    header["ORIGIN"] = "portaflow.cores.radio"
    for line in info.history:
        header.add_history(line)
    data = to_fits_array(img).astype(np.float32)[None, None, :, :]
    hdu = fits.PrimaryHDU(data=data, header=header)
    hdu.writeto(path, overwrite=True, output_verify="exception")


def write_cube(path: str, planes: np.ndarray, cell: float, phase_centre: tuple[float, float], bunit: str,
               freqs: np.ndarray, beam: Beam | None = None, info: ImageInfo | None = None,
               beams: list[Beam | None] | None = None) -> None:
    """A spectral cube (nfreq, N, N) as one FITS file of shape (1, nfreq, N, N): the header of :func:`write_fits`
    with the FREQ axis at the first plane's frequency, CDELT3 the (even) spacing of the planes.

    ``beams`` (one per plane; None for an empty plane, written as NaN) are the planes' own restoring beams, in
    CASA's multi-beam convention: ``CASAMBM = T`` and a ``BEAMS`` binary table (BMAJ, BMIN in arcsec, BPA in
    degrees, CHAN, POL), which CASA, CARTA and radio-beam read; the primary header then has no BMAJ/BMIN/BPA."""
    from astropy.io import fits

    freqs = np.asarray(freqs, dtype=np.float64)
    step = float(freqs[1] - freqs[0]) if freqs.size > 1 else float((info and info.bandwidth_hz) or 1.0)
    single = dataclasses.replace(info or ImageInfo(), freq_hz=float(freqs[0]), bandwidth_hz=step)
    write_fits(path, planes[0], cell, phase_centre, bunit, beam=None if beams is not None else beam, info=single)
    data = np.stack([to_fits_array(p) for p in planes]).astype(np.float32)[None]
    with fits.open(path, mode="update") as hdul:
        hdul[0].data = data
        hdul[0].header["OBSFREQ"] = (float(np.mean(freqs)), "[Hz] mean frequency of the planes")
        if beams is not None:
            header = hdul[0].header
            for card in reversed([k for k, c in enumerate(header.cards) if c.keyword == "COMMENT" and "no restoring beam" in str(c.value)]):
                del header[card]
            header["CASAMBM"] = (True, "one restoring beam per plane: BEAMS table")
            hdul.append(beams_table(beams, cell, (info or ImageInfo()).stokes))
        hdul.flush(output_verify="exception")


def beams_table(beams: list[Beam | None], cell: float, stokes: int = 1) -> Any:
    """CASA's ``BEAMS`` extension: one row per plane, BMAJ/BMIN in arcsec, BPA in degrees, CHAN, POL (0-based)."""
    from astropy.io import fits

    values = np.array([b.in_degrees(cell) if b is not None else (np.nan, np.nan, np.nan) for b in beams], dtype=float)
    cols = [fits.Column(name="BMAJ", format="1E", unit="arcsec", array=values[:, 0] * 3600.0),
            fits.Column(name="BMIN", format="1E", unit="arcsec", array=values[:, 1] * 3600.0),
            fits.Column(name="BPA", format="1E", unit="deg", array=values[:, 2]),
            fits.Column(name="CHAN", format="1J", array=np.arange(len(beams), dtype=np.int32)),
            fits.Column(name="POL", format="1J", array=np.zeros(len(beams), dtype=np.int32))]
    table = fits.BinTableHDU.from_columns(cols, name="BEAMS")
    table.header["EXTVER"] = 1
    table.header["NCHAN"] = len(beams)
    table.header["NPOL"] = 1
    return table


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


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str, summary: dict[str, Any]) -> None:
    """Deterministic, strict JSON (sorted keys, no timestamps; NaN and infinities written as null)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_finite(summary), fh, indent=2, sort_keys=True, allow_nan=False)
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
