"""Default image geometry from the data: pixel size from the longest baseline, image size from the primary beam.

Why defaults need care: a pixel size derived from the longest baseline (a third of its fringe) is right for
any array, but a fixed pixel count is not: on a compact low-frequency array (OVRO-LWA, MWA) 1024 such pixels
span thousands of degrees, i.e. most of the image is not on the sky.  The image size therefore comes from,
in order: ``npix``; ``fov_deg`` (an explicit field of view); the simulator's hint in the data; twice the
primary beam's FWHM (1.02 lambda / D at the lowest frequency, D the antennas' DISH_DIAMETER); and it is
capped at the visible hemisphere.  Explicit values are kept, with a warning when the image reaches past the
horizon; pixels beyond direction cosine 1 (no sky at all) are refused.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from portaflow.errors import InputError

from . import C_LIGHT
from .geometry import ImageGeometry
from .observation import Observation

log = logging.getLogger(__name__)

MAX_DEFAULT_NPIX = 4096
FALLBACK_NPIX = 1024  # no dish diameter known: the former fixed default, still capped at the horizon
HORIZON_FOV = math.sqrt(2.0)  # in l (the cell is a step in l): the square whose corners touch l^2 + m^2 = 1


def _even(n: float) -> int:
    return max(32, int(math.ceil(n / 2.0)) * 2)


def image_geometry(obs: Observation, npix: int | None = None, cell_arcsec: float | None = None,
                   fov_deg: float | None = None, epsilon: float = 1e-5, wgridding: bool = True) -> ImageGeometry:
    """The image grid for ``obs``: given values win; missing ones are derived as the module docstring says."""
    hints = obs.meta.get("image", {})
    given = {"cell_arcsec"} if cell_arcsec is not None else set()
    used = obs.imaging_weights() > 0
    if not used.any():
        raise InputError("every visibility of the selection is flagged or has zero weight; there is nothing to image")
    if cell_arcsec is None:
        cell_arcsec = hints.get("cell_arcsec")
    if cell_arcsec is None:  # ~3 pixels across the synthesised beam of the longest baseline
        rows = used.any(axis=1)
        umax = float(np.abs(obs.uvw[rows, :2]).max() * obs.freq[used.any(axis=0)].max() / C_LIGHT)
        if umax <= 0:
            raise InputError("every unflagged baseline has zero length in u and v; no pixel size can be derived")
        cell_arcsec = math.degrees(1.0 / (3.0 * umax)) * 3600.0
    cell = math.radians(float(cell_arcsec) / 3600.0)
    if npix is None and fov_deg:
        fov = math.radians(float(fov_deg))
        if fov / cell < 32 and "cell_arcsec" not in given:  # ducc0's smallest image: finer pixels, same field
            cell = fov / 32
            cell_arcsec = math.degrees(cell) * 3600.0
        npix = _even(fov / cell)
    if npix is None:
        npix = hints.get("npix")
    if npix is None:
        if obs.dish_diameter_m > 0:
            wavelength = C_LIGHT / float(obs.freq[used.any(axis=0)].min())
            fov = 2.0 * 1.02 * wavelength / obs.dish_diameter_m
            why = f"twice the primary beam FWHM of {obs.dish_diameter_m:g} m dishes"
        else:
            fov = FALLBACK_NPIX * cell
            why = "no dish diameter in the data; the fallback size"
        if fov > HORIZON_FOV:
            fov, why = HORIZON_FOV, why + ", capped at the horizon"
            npix = max(32, int(fov / cell / 2.0) * 2)  # round down: stay inside the horizon
        else:
            npix = _even(fov / cell)
        if npix > MAX_DEFAULT_NPIX:
            npix, why = MAX_DEFAULT_NPIX, why + f", capped at {MAX_DEFAULT_NPIX} pixels"
        level = logging.WARNING if "capped" in why else logging.INFO  # smaller than the primary beam: say so loudly
        log.log(level, "image size %d x %.3g arcsec = %.3g deg (%s)", npix, float(cell_arcsec), math.degrees(npix * cell), why)
    npix = int(npix)
    half = npix / 2 * cell
    if half >= 1.0:
        raise InputError(f"an image of {npix} pixels of {float(cell_arcsec):g} arcsec spans {math.degrees(npix * cell):.0f} deg: "
                         "pixels beyond direction cosine 1 are not on the sky; give a smaller npix, cell_arcsec or fov_deg")
    if math.sqrt(2.0) * half > 1.0:
        log.warning("the image (%d pixels of %g arcsec, %.1f deg) reaches past the horizon at its corners",
                    npix, float(cell_arcsec), math.degrees(npix * cell))
    return ImageGeometry(npix=npix, cell=cell, epsilon=epsilon, do_wgridding=wgridding)
