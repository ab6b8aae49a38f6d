"""Measurement Set and zarr round trips are exact; FITS products carry a correct celestial WCS."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from portaflow.cores.radio.clean import Beam
from portaflow.cores.radio.msio import open_ms_dask, read_ms, read_observation, read_zarr, write_ms, write_zarr
from portaflow.cores.radio.simulate import SimulationConfig, simulate_observation

FIELDS = ("uvw", "freq", "vis", "weight", "flag", "antenna1", "antenna2", "time", "antenna_positions")


@pytest.fixture(scope="module")
def noisy_obs():
    """Small noisy observation with some flags and varied weights (so every column carries information)."""
    obs = simulate_observation(SimulationConfig(nants=7, ntimes=5, nchan=3, npix=64, cell_arcsec=100.0,
                                                nsources=2, layout_scale=0.05, noise_jy=0.3, seed=3))
    rng = np.random.default_rng(1)
    obs.flag = rng.random(obs.vis.shape) < 0.1
    obs.weight = rng.uniform(0.5, 2.0, size=obs.vis.shape).astype(np.float32)
    return obs


def assert_same(a, b):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y), name
    assert a.phase_centre == b.phase_centre
    assert a.meta == b.meta


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("use_daskms", [True, False], ids=["dask-ms", "casacore"])
def test_measurement_set_round_trip_is_exact(noisy_obs, tmp_path, dtype, use_daskms):
    obs = dataclasses.replace(noisy_obs, vis=noisy_obs.vis.astype(dtype))
    path = str(tmp_path / "obs.ms")
    write_ms(obs, path)
    assert_same(obs, read_ms(path, row_chunks=17, use_daskms=use_daskms))


def test_measurement_set_is_a_real_ms(noisy_obs, tmp_path):
    """Standard columns and subtables, readable as chunked Dask arrays through dask-ms."""
    from casacore.tables import table

    path = str(tmp_path / "obs.ms")
    write_ms(dataclasses.replace(noisy_obs, vis=noisy_obs.vis.astype(np.complex64)), path)
    with table(path, ack=False) as t:
        assert t.getcoldesc("DATA")["valueType"] == "complex"
        assert t.nrows() == noisy_obs.nrow
    with table(path + "::SPECTRAL_WINDOW", ack=False) as t:
        assert np.array_equal(t.getcell("CHAN_FREQ", 0), noisy_obs.freq)
    with table(path + "::POLARIZATION", ack=False) as t:
        assert list(t.getcell("CORR_TYPE", 0)) == [1]  # Stokes I
    ds = open_ms_dask(path, row_chunks=11)
    assert ds.DATA.data.chunks[0][0] == 11
    assert np.array_equal(ds.UVW.data.compute(), noisy_obs.uvw)


def test_zarr_round_trip_is_exact(noisy_obs, tmp_path):
    path = str(tmp_path / "obs.zarr")
    write_zarr(noisy_obs, path, row_chunks=13)
    assert_same(noisy_obs, read_zarr(path))
    assert_same(noisy_obs, read_observation(path))


def test_fits_wcs_maps_source_pixels_to_simulated_radec(clean_obs, true_model, tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    from portaflow.cores.radio.products import write_fits

    obs, geom = clean_obs
    path = str(tmp_path / "model.fits")
    write_fits(path, true_model(obs, geom.npix), geom.cell, obs.phase_centre, "JY/PIXEL",
               beam=Beam(6.0, 4.0, 20.0), freq_hz=1.1e9)
    with fits.open(path) as hdul:
        header, data = hdul[0].header, hdul[0].data
    # 4 axes as CASA and WSClean write them: RA, Dec, frequency, Stokes (I)
    assert data.shape == (1, 1, geom.npix, geom.npix)
    assert [header[f"CTYPE{k}"] for k in range(1, 5)] == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    assert header["CRVAL3"] == pytest.approx(1.1e9) and header["CRVAL4"] == 1.0
    assert header["CDELT1"] < 0 < header["CDELT2"]
    data = data[0, 0]
    assert header["BMAJ"] == pytest.approx(6.0 * math.degrees(geom.cell))
    assert header["BMIN"] == pytest.approx(4.0 * math.degrees(geom.cell))
    assert header["BPA"] == pytest.approx(20.0)
    wcs = WCS(header).celestial
    sky = obs.meta["sky"]
    ys, xs = np.nonzero(data)
    assert len(xs) == len(sky["flux"])
    for x, y in zip(xs, ys, strict=True):
        ra, dec = wcs.wcs_pix2world([[x, y]], 0)[0]
        k = int(np.argmin(np.hypot(np.array(sky["ra_deg"]) - ra, np.array(sky["dec_deg"]) - dec)))
        assert ra == pytest.approx(sky["ra_deg"][k], abs=1e-9)
        assert dec == pytest.approx(sky["dec_deg"][k], abs=1e-9)
        assert data[y, x] == pytest.approx(sky["flux"][k], rel=1e-6)
    # the phase centre is the reference pixel
    ra0, dec0 = wcs.wcs_pix2world([[header["CRPIX1"] - 1, header["CRPIX2"] - 1]], 0)[0]
    assert (ra0, dec0) == pytest.approx((math.degrees(obs.phase_centre[0]), math.degrees(obs.phase_centre[1])))


def test_simulated_radec_follows_the_sin_projection(clean_obs):
    """The simulator's RA/Dec of each source agree with astropy's own SIN projection of its (l, m)."""
    from astropy.wcs import WCS

    obs, geom = clean_obs
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [math.degrees(obs.phase_centre[0]), math.degrees(obs.phase_centre[1])]
    w.wcs.crpix = [1.0, 1.0]  # 0-based pixel p -> intermediate coordinate p (degrees)
    w.wcs.cdelt = [1.0, 1.0]
    sky = obs.meta["sky"]
    for l, m, ra, dec in zip(sky["l"], sky["m"], sky["ra_deg"], sky["dec_deg"], strict=True):
        # intermediate world coordinates of SIN are (l, m) in degrees
        got = w.wcs_pix2world([[math.degrees(l), math.degrees(m)]], 0)[0]
        assert got == pytest.approx((ra, dec), abs=1e-9)
