"""The sky the right way round, pinned without portaflow's simulator.

A point source east and north of the phase centre (so a mirror in either axis fails) is predicted by a
direct DFT written here from the measurement equation as CASA documents it,
``V(u,v,w) = sum I(l,m)/n exp(-2 pi i (u l + v m + w (n-1)))``, then written to a Measurement Set and
imaged by the ``image`` step; the FITS peak must be the source's pixel and the FITS WCS must give back
its RA/Dec.

Which baseline vector (u, v, w) stands for in that equation decides the orientation.  Real Measurement
Sets store UVW = antenna2 - antenna1 (pyuvdata, after asking the CASA helpdesk, and the MS definition) and
their visibilities are phased with ``V_new = V_old exp(-2 pi i (w_new - w_old))`` (pyuvdata's
``_apply_w_proj``): the equation then holds with (u, v, w) = -UVW, i.e. the baseline antenna1 - antenna2.
The real-data test in test_radio_real_ms.py checks the same orientation on a real MWA observation.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from portaflow.cores.radio import steps
from portaflow.cores.radio.msio import write_ms
from portaflow.cores.radio.observation import Observation

C = 299_792_458.0
RA0, DEC0 = 150.0, 30.0  # phase centre, degrees
NPIX, CELL_ARCSEC = 128, 20.0
DI, DJ = 23, 14  # source offset in pixels: east (l) and north (m)


def casa_dft(uvw_baseline_m, freq, flux, l, m):
    """``V = sum I/n exp(-2 pi i (u l + v m + w (n-1)))``, uvw the baseline in metres, per channel."""
    n = math.sqrt(1.0 - l * l - m * m)
    vis = np.zeros((uvw_baseline_m.shape[0], freq.size), dtype=np.complex128)
    for c, f in enumerate(freq):
        u, v, w = (uvw_baseline_m[:, k] * f / C for k in range(3))
        vis[:, c] = flux / n * np.exp(-2j * np.pi * (u * l + v * m + w * (n - 1.0)))
    return vis


def sin_projection(ra_deg, dec_deg, ra0_deg, dec0_deg):
    """Direction cosines (l east, m north) of (ra, dec) about (ra0, dec0) (Thompson, Moran & Swenson)."""
    ra, dec, ra0, dec0 = (math.radians(x) for x in (ra_deg, dec_deg, ra0_deg, dec0_deg))
    l = math.cos(dec) * math.sin(ra - ra0)
    m = math.sin(dec) * math.cos(dec0) - math.cos(dec) * math.sin(dec0) * math.cos(ra - ra0)
    return l, m


def _observation(rng):
    """A compact random array: baselines from 24 antennas, 8 snapshots of earth rotation, 2 channels."""
    nant, ntime = 24, 8
    enu = np.column_stack([rng.normal(0, 600, nant), rng.normal(0, 600, nant), rng.normal(0, 2, nant)])
    lat, dec0 = math.radians(-30.0), math.radians(DEC0)
    xyz = np.column_stack([-math.sin(lat) * enu[:, 1] + math.cos(lat) * enu[:, 2], enu[:, 0],
                           math.cos(lat) * enu[:, 1] + math.sin(lat) * enu[:, 2]])
    a1, a2 = np.triu_indices(nant, k=1)
    rows = []
    for h in np.linspace(-0.6, 0.6, ntime):
        b = xyz[a2] - xyz[a1]  # MS UVW: antenna2 - antenna1
        u = math.sin(h) * b[:, 0] + math.cos(h) * b[:, 1]
        v = -math.sin(dec0) * math.cos(h) * b[:, 0] + math.sin(dec0) * math.sin(h) * b[:, 1] + math.cos(dec0) * b[:, 2]
        w = math.cos(dec0) * math.cos(h) * b[:, 0] - math.cos(dec0) * math.sin(h) * b[:, 1] + math.sin(dec0) * b[:, 2]
        rows.append(np.column_stack([u, v, w]))
    uvw = np.concatenate(rows)
    ant1, ant2 = np.tile(a1, ntime).astype(np.int32), np.tile(a2, ntime).astype(np.int32)
    return uvw, ant1, ant2


def test_point_source_east_and_north_lands_at_its_pixel_and_radec(tmp_path):
    rng = np.random.default_rng(3)
    cell = math.radians(CELL_ARCSEC / 3600.0)
    # the source: the RA/Dec whose SIN projection is exactly DI, DJ pixels east and north of the centre
    l, m = DI * cell, DJ * cell
    n = math.sqrt(1 - l * l - m * m)
    d0 = math.radians(DEC0)
    dec = math.degrees(math.asin(m * math.cos(d0) + n * math.sin(d0)))
    ra = RA0 + math.degrees(math.atan2(l, n * math.cos(d0) - m * math.sin(d0)))
    assert np.allclose(sin_projection(ra, dec, RA0, DEC0), (l, m), atol=1e-14)
    assert ra > RA0 and dec > DEC0  # east and north

    uvw_ms, ant1, ant2 = _observation(rng)
    freq = np.array([1.0e9, 1.1e9])
    vis = casa_dft(-uvw_ms, freq, 5.0, l, m)  # (u, v, w) of the equation = antenna1 - antenna2 = -UVW
    nrow = uvw_ms.shape[0]
    obs = Observation(uvw=uvw_ms, freq=freq, vis=vis, weight=np.ones(vis.shape, np.float32),
                      flag=np.zeros(vis.shape, bool), antenna1=ant1, antenna2=ant2,
                      time=np.repeat(np.arange(8.0), nrow // 8), antenna_positions=np.zeros((24, 3)),
                      phase_centre=(math.radians(RA0), math.radians(DEC0)))
    ms = str(tmp_path / "point.ms")
    write_ms(obs, ms)
    out = {"dirty": str(tmp_path / "dirty.fits")}
    steps.image({"ms": ms}, out, {"npix": NPIX, "cell_arcsec": CELL_ARCSEC, "niter": 0, "epsilon": 1e-7})

    with fits.open(out["dirty"]) as hdul:
        data, header = np.asarray(hdul[0].data, dtype=float), hdul[0].header
    data = data.reshape(data.shape[-2:])
    y, x = np.unravel_index(int(np.argmax(data)), data.shape)
    assert data[y, x] > 0.95 * 5.0  # the whole flux in one pixel: the source sits at a pixel centre
    wcs = WCS(header).celestial
    # the source pixel from the WCS: the image must agree with its own coordinates
    sx, sy = wcs.world_to_pixel_values(ra, dec)
    assert (x, y) == (round(float(sx)), round(float(sy)))
    peak_ra, peak_dec = (float(v) for v in wcs.pixel_to_world_values(x, y))
    cell_deg = CELL_ARCSEC / 3600.0
    assert abs((peak_ra - ra) * math.cos(math.radians(dec))) < cell_deg and abs(peak_dec - dec) < cell_deg
    # and not at its mirror through the phase centre (in either axis)
    for mra, mdec in ((2 * RA0 - ra, dec), (ra, 2 * DEC0 - dec), (2 * RA0 - ra, 2 * DEC0 - dec)):
        mx, my = wcs.world_to_pixel_values(mra, mdec)
        assert data[round(float(my)), round(float(mx))] < 0.5 * data[y, x]


def test_gpu_algorithm_and_ducc0_agree_on_the_orientation():
    """The ES gridder the GPU runs (here with numpy) puts the same source at the same pixel as ducc0."""
    from portaflow.cores.radio.gpu import numpy_es_backend
    from portaflow.cores.radio.gridding import CPU_BACKEND, ImageGeometry

    uvw_ms, _, _ = _observation(np.random.default_rng(3))
    freq = np.array([1.0e9])
    cell = math.radians(CELL_ARCSEC / 3600.0)
    vis = casa_dft(-uvw_ms, freq, 1.0, DI * cell, DJ * cell)
    geom = ImageGeometry(NPIX, cell, 1e-6)
    for backend in (CPU_BACKEND, numpy_es_backend()):
        img = backend.vis2dirty(uvw_ms, freq, vis, None, geom)
        i, j = np.unravel_index(int(np.argmax(img)), img.shape)
        assert (i - NPIX // 2, j - NPIX // 2) == (DI, DJ), backend.name  # l east, m north in memory
        # and the degridder is its adjoint: it predicts the same visibilities as the DFT
        model = np.zeros((NPIX, NPIX))
        model[NPIX // 2 + DI, NPIX // 2 + DJ] = 1.0
        pred = backend.dirty2vis(uvw_ms, freq, model, geom)
        n = math.sqrt(1 - (DI * cell) ** 2 - (DJ * cell) ** 2)
        assert np.allclose(pred, vis * n, atol=1e-5), backend.name  # images are not divided by n
