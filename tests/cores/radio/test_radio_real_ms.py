"""Real Measurement Sets from real telescopes, as shipped inside the pyuvdata 3.1.3 wheel on PyPI.

The wheel is fetched at test set-up through tests/testdata.py (pinned file name and sha256, cached, never
committed).  Used here: an MWA snapshot of Fornax A (1102865728_small.ms, XX XY YX YY, with
autocorrelations) and a VLA calibrator scan (day2_TDEM0003_10s_norx_1src_1spw.ms, RR RL LR LL).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from portaflow.cores.radio import steps
from portaflow.cores.radio.msio import read_ms, write_ms
from portaflow.cores.radio.observation import Observation

from testdata import PYUVDATA, wheel_data

MWA = "1102865728_small.ms"
VLA = "day2_TDEM0003_10s_norx_1src_1spw.ms"
OVRO_LWA = "2018-03-21-01_26_33_0004384620257280_000000_downselected.ms"
C = 299_792_458.0
# NGC 1316 = Fornax A (NED): the host galaxy between the two lobes
FORNAX_A = SkyCoord("03h22m41.7s", "-37d12m30s", frame="icrs")
# J1008+0730, the VLA calibrator (VLA calibrator list, J2000)
J1008 = SkyCoord("10h08m00.0s", "+07d30m16.55s", frame="icrs")

pytestmark = pytest.mark.xdist_group("pyuvdata_wheel")  # one extraction of the wheel at a time


@pytest.fixture(scope="module")
def pyuvdata_data():
    """The folder of pyuvdata's test data (extracted once from the pinned wheel into the cache)."""
    return wheel_data(PYUVDATA, "pyuvdata/data/")


def _dirty_peak(tmp_path, ms: str, npix: int, cell_arcsec: float) -> tuple[SkyCoord, np.ndarray, WCS]:
    out = {"dirty": str(tmp_path / "dirty.fits")}
    steps.image({"ms": ms}, out, {"npix": npix, "cell_arcsec": cell_arcsec, "niter": 0})
    with fits.open(out["dirty"]) as hdul:
        data, header = np.asarray(hdul[0].data, dtype=float), hdul[0].header
    data = data.reshape(data.shape[-2:])
    assert np.isfinite(data).all()
    wcs = WCS(header).celestial
    y, x = np.unravel_index(int(np.argmax(data)), data.shape)
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(x, y))
    return SkyCoord(ra * u.deg, dec * u.deg, frame="icrs"), data, wcs


@pytest.mark.parametrize("name,ncorr,nchan", [(MWA, 4, 10), (VLA, 4, 64), (OVRO_LWA, 4, 109)])
def test_reads_real_measurement_sets(pyuvdata_data, name, ncorr, nchan):
    from casacore.tables import table

    path = str(pyuvdata_data / name)
    obs = read_ms(path)
    with table(path, ack=False) as t:
        assert t.getcol("DATA").shape[1:] == (nchan, ncorr)
        cross = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
        assert np.array_equal(obs.uvw, t.getcol("UVW")[cross])
    assert obs.nchan == nchan and np.isfinite(obs.vis).all() and np.all(obs.weight >= 0)


def test_vla_scan_images(pyuvdata_data, tmp_path):
    """A VLA calibrator scan (uncalibrated: no position check) gives a finite dirty image and a PSF of peak 1
    at the phase centre, whose FITS reference is the MS's phase centre."""
    out = {"dirty": str(tmp_path / "dirty.fits"), "psf": str(tmp_path / "psf.fits")}
    steps.image({"ms": str(pyuvdata_data / VLA)}, out, {"npix": 128, "cell_arcsec": 0.5, "niter": 0})
    with fits.open(out["dirty"]) as d, fits.open(out["psf"]) as p:
        dirty, psf = np.asarray(d[0].data, float), np.asarray(p[0].data, float)
        wcs = WCS(p[0].header).celestial
    assert np.isfinite(dirty).all() and np.abs(dirty).max() > 0
    psf = psf.reshape(psf.shape[-2:])
    y, x = np.unravel_index(int(np.argmax(psf)), psf.shape)
    assert psf[y, x] == pytest.approx(1.0, rel=1e-4)
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(x, y))
    assert SkyCoord(ra * u.deg, dec * u.deg).separation(J1008) < 0.5 * u.arcsec


def _frame(ra: float, dec: float) -> np.ndarray:
    """Rows: the u (east), v (north) and w (towards the source) unit vectors of a phase centre, equatorial XYZ."""
    return np.array([[-math.sin(ra), math.cos(ra), 0.0],
                     [-math.sin(dec) * math.cos(ra), -math.sin(dec) * math.sin(ra), math.cos(dec)],
                     [math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)]])


def test_mwa_fornax_a_rephased_lands_at_its_catalogued_position(pyuvdata_data, tmp_path):
    """The MWA snapshot re-phased 2.5 deg east and 1.5 deg north of Fornax A: Fornax A is then 2.9 deg
    from the phase centre, and a mirrored imager would put it 5.8 deg from its catalogued position.

    The re-phasing is pyuvdata's (the software that wrote this MS): the baseline vector is re-projected
    on the new centre's (u, v, w) and ``V_new = V_old exp(-2 pi i (w_new - w_old) / lambda)``."""
    obs = read_ms(str(pyuvdata_data / MWA))
    ra0, dec0 = obs.phase_centre
    assert SkyCoord(ra0 * u.rad, dec0 * u.rad).separation(FORNAX_A) < 0.01 * u.deg  # phased on Fornax A
    ra1, dec1 = ra0 + math.radians(2.5) / math.cos(dec0), dec0 + math.radians(1.5)
    uvw1 = (obs.uvw @ _frame(ra0, dec0)) @ _frame(ra1, dec1).T
    vis1 = obs.vis * np.exp(-2j * np.pi * (uvw1[:, 2:3] - obs.uvw[:, 2:3]) * obs.freq[None, :] / C)
    rephased = Observation(uvw=uvw1, freq=obs.freq, vis=vis1.astype(np.complex64), weight=obs.weight, flag=obs.flag,
                           antenna1=obs.antenna1, antenna2=obs.antenna2, time=obs.time,
                           antenna_positions=obs.antenna_positions, phase_centre=(ra1, dec1))
    ms = str(tmp_path / "fornax_rephased.ms")
    write_ms(rephased, ms)
    peak, _, wcs = _dirty_peak(tmp_path, ms, 384, 90.0)  # 9.6 deg field, 1.5 arcmin cells
    centre = SkyCoord(ra1 * u.rad, dec1 * u.rad)
    assert 2.5 * u.deg < centre.separation(FORNAX_A) < 3.2 * u.deg
    # Fornax A's lobes reach ~0.4 deg from NGC 1316; its mirror through the phase centre is 5.8 deg away
    assert peak.separation(FORNAX_A) < 0.5 * u.deg


@pytest.mark.parametrize("name", [OVRO_LWA, MWA, VLA])
def test_real_stokes_i_from_corr_type(pyuvdata_data, name):
    """OVRO-LWA stores XX YY XY YX, MWA XX XY YX YY, the VLA RR RL LR LL: Stokes I is the parallel hands' mean."""
    from casacore.tables import table

    path = str(pyuvdata_data / name)
    with table(f"{path}::POLARIZATION", ack=False) as t:
        corr = list(t.getcell("CORR_TYPE", 0))
    with table(path, ack=False) as t:
        cross = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
        data = t.getcol("DATA")[cross]
    a, b = (corr.index(9), corr.index(12)) if 9 in corr else (corr.index(5), corr.index(8))
    obs = read_ms(path)
    assert np.array_equal(obs.vis, 0.5 * (data[..., a] + data[..., b]))
    if name == OVRO_LWA:
        assert (a, b) == (0, 1)  # the old "first and last" would have been (XX + YX) / 2


@pytest.mark.parametrize("name,nauto", [(MWA, 121), (OVRO_LWA, 20), (VLA, 0)])
def test_real_autocorrelations_dropped_and_counted(pyuvdata_data, name, nauto, caplog):
    from casacore.tables import table

    path = str(pyuvdata_data / name)
    with table(path, ack=False) as t:
        nrow = t.nrows()
    with caplog.at_level("INFO", logger="portaflow.cores.radio.msio"):
        obs = read_ms(path)
    assert obs.nrow == nrow - nauto and not np.any(obs.antenna1 == obs.antenna2)
    logged = [r.getMessage() for r in caplog.records if "autocorrelation" in r.getMessage()]
    assert logged == ([f"{path}: {nauto} autocorrelation rows of {nrow} dropped"] if nauto else [])
