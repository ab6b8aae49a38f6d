"""Selection, flags, weights, weighting, FITS headers and defaults on real Measurement Sets (pyuvdata 3.1.3 wheel).

Every image is checked against a reference made here from the MS columns (python-casacore) and ducc0's
wgridder called directly, with the same selection, Stokes and weights: what portaflow's reader, weighting
and products must reproduce.  MSs with several SPWs, a CORRECTED_DATA column or FLAG_ROW set are made from
the real VLA scan by copying it (rows duplicated into a second SPW at other frequencies, columns added):
the pyuvdata wheel ships no such MS whole.
"""

from __future__ import annotations

import json
import math
import tarfile

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from test_radio_real_ms import MWA, OVRO_LWA, VLA

from portaflow.cores.radio import steps
from portaflow.cores.radio.geometry import ImageGeometry
from portaflow.cores.radio.msio import read_ms, write_zarr
from portaflow.cores.radio.products import write_json
from portaflow.cores.radio.weighting import imaging_weights, uv_cells
from portaflow.errors import InputError

from testdata import PYUVDATA, wheel_data

ALMA_TAR = "X5707_1spw_1scan_10chan_1time_1bl_noatm.ms.tar.gz"
ALMA = "X5707_1spw_1scan_10chan_1time_1bl_noatm.ms"
NPIX, CELL_ARCSEC = 128, 0.5  # VLA images: 64 arcsec, the calibrator at the centre

pytestmark = pytest.mark.xdist_group("pyuvdata_wheel")


@pytest.fixture(scope="module")
def data_dir():
    return wheel_data(PYUVDATA, "pyuvdata/data/")


@pytest.fixture(scope="module")
def alma(data_dir, tmp_path_factory):
    """The ALMA MS (shipped as a tarball in the wheel): three FIELD rows, all data in field 2."""
    out = tmp_path_factory.mktemp("alma")
    with tarfile.open(data_dir / ALMA_TAR) as archive:
        archive.extractall(out, filter="data")
    return str(out / ALMA)


def _copy(src: str, dst: str) -> None:
    from casacore.tables import table

    with table(src, ack=False) as t:
        t.copy(dst, deep=True).close()


@pytest.fixture(scope="module")
def vla_two_spw(data_dir, tmp_path_factory):
    """The VLA scan with every row duplicated into SPW 1 (channels 10% higher); SPW 1 data = 2 x SPW 0 data."""
    from casacore.tables import table

    path = str(tmp_path_factory.mktemp("vla2") / "two_spw.ms")
    _copy(str(data_dir / VLA), path)
    with table(path, readonly=False, ack=False) as t:
        n = t.nrows()
        t.copyrows(t)
        t.putcol("DATA_DESC_ID", np.ones(n, dtype=np.int32), startrow=n)
        t.putcol("DATA", 2.0 * t.getcol("DATA", 0, n), startrow=n)
    with table(f"{path}::SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.copyrows(t)
        t.putcell("CHAN_FREQ", 1, 1.1 * t.getcell("CHAN_FREQ", 0))
        t.putcell("REF_FREQUENCY", 1, 1.1 * t.getcell("REF_FREQUENCY", 0))
    with table(f"{path}::DATA_DESCRIPTION", readonly=False, ack=False) as t:
        t.copyrows(t)
        t.putcell("SPECTRAL_WINDOW_ID", 1, 1)
    return path


@pytest.fixture(scope="module")
def vla_columns(data_dir, tmp_path_factory):
    """The VLA scan with CORRECTED_DATA = 3 x DATA, FLAG_ROW set on every third row, and a second field
    (FIELD row 1, 1 deg north) holding the last 100 rows."""
    from casacore.tables import makearrcoldesc, maketabdesc, table

    path = str(tmp_path_factory.mktemp("vlac") / "columns.ms")
    _copy(str(data_dir / VLA), path)
    with table(path, readonly=False, ack=False) as t:
        data = t.getcol("DATA")
        t.addcols(maketabdesc(makearrcoldesc("CORRECTED_DATA", 0j, ndim=2, shape=list(data.shape[1:]),
                                             valuetype="complex")))
        t.putcol("CORRECTED_DATA", 3.0 * data)
        flag_row = np.zeros(t.nrows(), dtype=bool)
        flag_row[::3] = True
        t.putcol("FLAG_ROW", flag_row)
        field = np.zeros(t.nrows(), dtype=np.int32)
        field[-100:] = 1
        t.putcol("FIELD_ID", field)
    with table(f"{path}::FIELD", readonly=False, ack=False) as t:
        t.copyrows(t)
        direction = t.getcell("PHASE_DIR", 0)
        direction[0, 1] += math.radians(1.0)
        for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcell(col, 1, direction)
        t.putcell("NAME", 1, "OTHER")
    return path


def _columns(path: str, query: str = "", data_column: str = "DATA"):
    """Rows of ``query``: uvw, Stokes I ((RR+LL)/2 for the VLA's RR RL LR LL), flags (FLAG or FLAG_ROW on
    either hand), WEIGHT_SPECTRUM of the mean, without autocorrelations, straight from python-casacore."""
    from casacore.tables import table

    with table(path, ack=False) as t, t.query(f"ANTENNA1 != ANTENNA2 {'AND ' + query if query else ''}") as sub:
        uvw, data, flag = sub.getcol("UVW"), sub.getcol(data_column), sub.getcol("FLAG")
        flag = flag | sub.getcol("FLAG_ROW")[:, None, None]
        ws = sub.getcol("WEIGHT_SPECTRUM").astype(np.float64)
    vis = 0.5 * (data[..., 0] + data[..., 3])
    wa, wb = ws[..., 0], ws[..., 3]
    w = np.where(flag[..., 0] | flag[..., 3], 0.0, 4 * wa * wb / (wa + wb))
    return uvw, vis, w


def _ducc0_dirty(uvw, freq, vis, wgt, npix=NPIX, cell_arcsec=CELL_ARCSEC, epsilon=1e-7):
    """ducc0's wgridder called directly, with the flips pfb-imaging uses for MS data (u and v flipped, no division
    by n), normalised by the sum of weights: the reference dirty image in ducc0's (l, m) layout."""
    import ducc0.wgridder.experimental as wg

    cell = math.radians(cell_arcsec / 3600)
    img = wg.vis2dirty(uvw=np.asarray(uvw, np.float64), freq=np.asarray(freq, np.float64),
                       vis=np.asarray(vis, np.complex128), wgt=np.asarray(wgt, np.float64), npix_x=npix, npix_y=npix,
                       pixsize_x=cell, pixsize_y=cell, epsilon=epsilon, do_wgridding=True, flip_u=True, flip_v=True,
                       flip_w=False, divide_by_n=False, nthreads=1)
    return img, float(np.sum(wgt))


def _fits_image(path: str) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path) as hdul:
        data, header = np.asarray(hdul[0].data, dtype=np.float64), hdul[0].header
    assert data.shape == (1, 1, header["NAXIS2"], header["NAXIS1"])
    return data[0, 0], header


def _lm(fits_img: np.ndarray) -> np.ndarray:
    """FITS (y, x) back to ducc0's (l, m) layout (products.to_fits_array inverted)."""
    return fits_img.T[::-1, :]


def _image(tmp_path, ms: str, **args) -> tuple[np.ndarray, fits.Header, dict]:
    out = {"dirty": str(tmp_path / "dirty.fits"), "summary": str(tmp_path / "summary.json")}
    steps.image({"ms": ms}, out, {"npix": NPIX, "cell_arcsec": CELL_ARCSEC, "niter": 0, "epsilon": 1e-7, **args})
    img, header = _fits_image(out["dirty"])
    return _lm(img), header, json.loads((tmp_path / "summary.json").read_text())


def _close(img: np.ndarray, ref: np.ndarray, tol: float = 1e-5) -> None:
    assert np.max(np.abs(img - ref)) <= tol * np.max(np.abs(ref)), np.max(np.abs(img - ref)) / np.max(np.abs(ref))


# ---- the reference comparison: portaflow's dirty image = ducc0 called directly on the MS columns ----

@pytest.mark.parametrize("name,npix,cell", [(VLA, NPIX, CELL_ARCSEC), (MWA, 256, 90.0)])
def test_dirty_image_equals_ducc0_called_on_the_ms(data_dir, tmp_path, name, npix, cell):
    from casacore.tables import table

    path = str(data_dir / name)
    with table(f"{path}::SPECTRAL_WINDOW", ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    with table(f"{path}::POLARIZATION", ack=False) as t:
        corr = list(t.getcell("CORR_TYPE", 0))
    with table(path, ack=False) as t:
        cross = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
        data, flag = t.getcol("DATA")[cross], t.getcol("FLAG")[cross] | t.getcol("FLAG_ROW")[cross][:, None, None]
        ws, uvw = t.getcol("WEIGHT_SPECTRUM")[cross].astype(np.float64), t.getcol("UVW")[cross]
    a, b = (corr.index(9), corr.index(12)) if 9 in corr else (corr.index(5), corr.index(8))
    vis = 0.5 * (data[..., a] + data[..., b])
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(flag[..., a] | flag[..., b] | (ws[..., a] + ws[..., b] <= 0), 0.0,
                     4 * ws[..., a] * ws[..., b] / (ws[..., a] + ws[..., b]))
    ref, sumw = _ducc0_dirty(uvw, freq, vis, w, npix, cell)
    out = {"dirty": str(tmp_path / "d.fits")}
    steps.image({"ms": path}, out, {"npix": npix, "cell_arcsec": cell, "niter": 0, "epsilon": 1e-7})
    _close(_lm(_fits_image(out["dirty"])[0]), ref / sumw)


# ---- selection ----

def test_alma_field_is_the_one_the_data_use(alma, tmp_path):
    """Real ALMA data, all in field 2 of three: the FITS reference is FIELD row 2's phase centre (row 0 is 14.8 deg away)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from casacore.tables import table

    with table(f"{alma}::FIELD", ack=False) as t:
        dirs = [t.getcell("PHASE_DIR", k)[0] for k in range(t.nrows())]
    out = {"dirty": str(tmp_path / "d.fits")}
    steps.image({"ms": alma}, out, {"npix": 64, "niter": 0})
    _, header = _fits_image(out["dirty"])
    wcs = WCS(header)
    ra, dec = wcs.celestial.wcs.crval
    assert (ra, dec) == pytest.approx((math.degrees(dirs[2][0]) % 360, math.degrees(dirs[2][1])), abs=1e-9)
    assert SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(dirs[0][0] * u.rad, dirs[0][1] * u.rad)) > 14 * u.deg
    assert header["OBJECT"] == "GAMA567624" and header["TELESCOP"] == "ALMA"
    # by name, and refusals that say what the MS holds
    assert read_ms(alma, field="GAMA567624").selection["field_id"] == 2
    with pytest.raises(InputError, match=r"field 0 \('J1337-1257'\) has no data rows; fields with data: 2 'GAMA567624'"):
        read_ms(alma, field=0)
    with pytest.raises(InputError, match="has no field 5: its FIELD table has 3 rows"):
        read_ms(alma, field=5)
    with pytest.raises(InputError, match="has no field named 'M87'"):
        read_ms(alma, field="M87")
    # no WEIGHT_SPECTRUM in this MS: auto takes WEIGHT; asking for WEIGHT_SPECTRUM is refused
    assert read_ms(alma).selection["weight_column"] == ["WEIGHT"]
    with pytest.raises(InputError, match="has no WEIGHT_SPECTRUM values"):
        read_ms(alma, weight_column="WEIGHT_SPECTRUM")


def test_several_fields_need_a_choice(vla_columns, tmp_path):
    with pytest.raises(InputError, match=r"the data hold 2 fields \(0 'J1008\+0730' \(1260 rows\), 1 'OTHER' \(100 rows\)\); "
                                         "choose one with 'field'"):
        read_ms(vla_columns)
    other = read_ms(vla_columns, field="OTHER", use_daskms=False)
    assert other.nrow == 100 and other.selection["field_id"] == 1
    first = read_ms(vla_columns, field=0)
    assert first.nrow == 1260 and first.phase_centre[1] == pytest.approx(other.phase_centre[1] - math.radians(1.0))


def test_data_columns_and_flag_row(vla_columns, data_dir, tmp_path):
    """CORRECTED_DATA = 3 x DATA images 3x brighter; FLAG_ROW rows are left out exactly as the reference leaves
    them out; a column the MS lacks is refused naming those it has."""
    from casacore.tables import table

    with table(f"{vla_columns}::SPECTRAL_WINDOW", ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    uvw, vis, w = _columns(vla_columns, "FIELD_ID == 0")
    assert np.count_nonzero(w) < w.size * 0.7  # FLAG_ROW really removed a third of the rows
    ref, sumw = _ducc0_dirty(uvw, freq, vis, w)
    data, header, summary = _image(tmp_path, vla_columns, field=0)
    _close(data, ref / sumw)
    assert summary["selection"]["flag_row_rows"] == 420
    corrected, _, _ = _image(tmp_path, vla_columns, field=0, data_column="corrected_data")
    _close(corrected, 3.0 * ref / sumw)
    with pytest.raises(InputError, match="has no MODEL_DATA column \\(data columns present: DATA, CORRECTED_DATA\\)"):
        read_ms(vla_columns, field=0, data_column="MODEL_DATA")
    with pytest.raises(InputError, match="data column 'RESIDUAL' is not one of"):
        read_ms(vla_columns, field=0, data_column="RESIDUAL")


def test_fully_flagged_selection_is_a_clear_error(vla_columns, tmp_path):
    from casacore.tables import table

    path = str(tmp_path / "flagged.ms")
    _copy(vla_columns, path)
    with table(path, readonly=False, ack=False) as t:
        t.putcol("FLAG_ROW", np.ones(t.nrows(), dtype=bool))
    with pytest.raises(InputError, match="every visibility of the selection is flagged or has zero weight"):
        steps.image({"ms": path}, {"dirty": str(tmp_path / "d.fits")}, {"field": 0, "niter": 0})
    assert not (tmp_path / "d.fits").exists()


def test_spectral_windows_mfs_and_one_by_one(vla_two_spw, tmp_path):
    """Two SPWs: each alone equals ducc0 on its own rows and frequencies; both together are the MFS image
    (the weighted sum of the two references); an SPW the field lacks is refused."""
    from casacore.tables import table

    with table(f"{vla_two_spw}::SPECTRAL_WINDOW", ack=False) as t:
        f0, f1 = t.getcell("CHAN_FREQ", 0), t.getcell("CHAN_FREQ", 1)
    uvw0, vis0, w0 = _columns(vla_two_spw, "DATA_DESC_ID == 0")
    uvw1, vis1, w1 = _columns(vla_two_spw, "DATA_DESC_ID == 1")
    r0, s0 = _ducc0_dirty(uvw0, f0, vis0, w0)
    r1, s1 = _ducc0_dirty(uvw1, f1, vis1, w1)
    one, _, _ = _image(tmp_path, vla_two_spw, spw=1)
    _close(one, r1 / s1)
    both, header, summary = _image(tmp_path, vla_two_spw)
    _close(both, (r0 + r1) / (s0 + s1))
    assert summary["selection"]["spw"] == [0, 1]
    assert header["CRVAL3"] == pytest.approx(np.mean(np.concatenate([f0, f1])))
    assert read_ms(vla_two_spw, spw="0,1").nchan == 128 and read_ms(vla_two_spw, spw=[0]).nchan == 64
    with pytest.raises(InputError, match="field 0 has no data in SPW 3 \\(SPWs with data: 0, 1\\)"):
        read_ms(vla_two_spw, spw=3)


def test_weight_columns(data_dir):
    """auto = WEIGHT_SPECTRUM where defined; SIGMA gives 1/sigma^2; unit gives each correlation 1 (so 2 to the
    mean of two hands)."""
    from casacore.tables import table

    path = str(data_dir / VLA)
    with table(path, ack=False) as t:
        sigma = t.getcol("SIGMA").astype(np.float64)
        ws = t.getcol("WEIGHT_SPECTRUM").astype(np.float64)
    auto, from_sigma, unit = (read_ms(path, weight_column=c) for c in ("auto", "SIGMA", "unit"))
    assert auto.selection["weight_column"] == ["WEIGHT_SPECTRUM"]
    expected = 4 * ws[..., 0] * ws[..., 3] / (ws[..., 0] + ws[..., 3])
    assert np.allclose(auto.weight, expected, rtol=1e-6)
    sa, sb = 1 / sigma[:, 0] ** 2, 1 / sigma[:, 3] ** 2
    assert np.allclose(from_sigma.weight, (4 * sa * sb / (sa + sb))[:, None], rtol=1e-6)
    assert np.all(unit.weight == 2.0)


def test_zarr_refuses_a_selection(data_dir, tmp_path):
    obs = read_ms(str(data_dir / VLA))
    write_zarr(obs, str(tmp_path / "v.zarr"))
    with pytest.raises(InputError, match="a zarr store holds one selection already"):
        steps.image({"zarr": str(tmp_path / "v.zarr")}, {"dirty": str(tmp_path / "d.fits")}, {"field": 1})


# ---- weighting ----

def test_weighting_formulas_on_a_hand_made_case():
    """Three samples, two in one uv cell (weights 1, 1) and one alone (weight 2): uniform 1/2, 1/2, 1;
    Briggs robust 0: f^2 = 25 / ((2^2 + 2^2) / 4) = 12.5, so W = w / (1 + 2 f^2) = 1/26, 1/26, 2/26."""
    geom = ImageGeometry(npix=64, cell=math.radians(60 / 3600))
    du = 1.0 / (64 * geom.cell)
    c = 299_792_458.0
    uvw = np.array([[3 * du * c / 1e9, 5 * du * c / 1e9, 0.0], [-3 * du * c / 1e9, -5 * du * c / 1e9, 0.0],
                    [10 * du * c / 1e9, 2 * du * c / 1e9, 0.0]])  # the 2nd is the 1st's conjugate cell
    freq = np.array([1e9])
    natural = np.array([[1.0], [1.0], [2.0]])
    assert np.allclose(imaging_weights(uvw, freq, natural, geom, "uniform"), [[0.5], [0.5], [1.0]])
    assert np.allclose(imaging_weights(uvw, freq, natural, geom, "briggs", 0.0), [[1 / 26], [1 / 26], [2 / 26]])
    assert np.array_equal(imaging_weights(uvw, freq, natural, geom, "natural"), natural)
    with pytest.raises(InputError, match="robust 3.0 is outside"):
        imaging_weights(uvw, freq, natural, geom, "briggs", 3.0)
    with pytest.raises(InputError, match="weighting 'superuniform' is not one of"):
        imaging_weights(uvw, freq, natural, geom, "superuniform")


def test_weighting_on_real_data(data_dir, tmp_path):
    """VLA scan: uniform weights sum to 1 in every occupied uv cell; Briggs runs from uniform-like (robust -2)
    to natural-like (+2); the uniform beam is narrower than the natural one; each dirty image equals ducc0
    called with those weights."""
    from casacore.tables import table

    path = str(data_dir / VLA)
    obs = read_ms(path)
    geom = ImageGeometry(NPIX, math.radians(CELL_ARCSEC / 3600), 1e-7)
    natural = obs.imaging_weights()
    uniform = imaging_weights(obs.uvw, obs.freq, natural, geom, "uniform")
    iu, iv = uv_cells(obs.uvw, obs.freq, geom)
    keys = (iu * 10**6 + iv)[uniform > 0]
    sums = np.bincount(np.unique(keys, return_inverse=True)[1], weights=uniform[uniform > 0])
    assert np.allclose(sums, 1.0)

    def corr(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    low = imaging_weights(obs.uvw, obs.freq, natural, geom, "briggs", -2.0)
    high = imaging_weights(obs.uvw, obs.freq, natural, geom, "briggs", 2.0)
    assert corr(low, uniform) > 0.99 and corr(high, natural) > 0.99 and corr(low, natural) < corr(high, natural)
    with table(f"{path}::SPECTRAL_WINDOW", ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    beams = {}
    for scheme, weights in (("natural", natural), ("uniform", uniform)):
        ref, sumw = _ducc0_dirty(obs.uvw, freq, obs.vis, weights)
        img, header, summary = _image(tmp_path, path, weighting=scheme)
        _close(img, ref / sumw)
        assert summary["image"]["weighting"] == scheme and any(f"weighting {scheme}" in h for h in header["HISTORY"])
        beams[scheme] = header["BMAJ"] * header["BMIN"]
    assert beams["uniform"] < beams["natural"]


# ---- FITS headers, defaults, strict JSON ----

def test_fits_headers_read_by_astropy(data_dir, tmp_path):
    from astropy.time import Time
    from casacore.tables import table

    path = str(data_dir / VLA)
    with table(f"{path}::FIELD", ack=False) as t:
        ra, dec = t.getcell("PHASE_DIR", 0)[0]
    with table(f"{path}::SPECTRAL_WINDOW", ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    with table(path, ack=False) as t:
        start = t.getcol("TIME").min()
    out = {n: str(tmp_path / f"{n}.fits") for n in ("restored", "model", "psf")}
    steps.image({"ms": path}, out, {"npix": NPIX, "cell_arcsec": CELL_ARCSEC, "niter": 20})
    for name, unit in (("restored", "JY/BEAM"), ("model", "JY/PIXEL"), ("psf", "")):
        _, header = _fits_image(out[name])
        wcs = WCS(header)
        assert wcs.naxis == 4 and list(wcs.wcs.ctype) == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
        world = wcs.pixel_to_world_values(header["CRPIX1"] - 1, header["CRPIX2"] - 1, 0, 0)
        assert world[0] == pytest.approx(math.degrees(ra) % 360, abs=1e-9)
        assert world[1] == pytest.approx(math.degrees(dec), abs=1e-9)
        assert world[2] == pytest.approx(np.mean(freq)) and world[3] == 1.0  # Stokes I
        assert header["BUNIT"] == unit and header["RESTFRQ"] == pytest.approx(np.mean(freq))
        assert header["BMAJ"] > header["BMIN"] > 0 and -180 <= header["BPA"] <= 180
        assert header["TELESCOP"] == "EVLA" and header["OBJECT"] == "J1008+0730"
        assert header["RADESYS"] == "ICRS" and header["EQUINOX"] == 2000.0
        assert Time(header["DATE-OBS"], scale="utc").mjd * 86400 == pytest.approx(start, abs=1e-3)


def test_default_size_stays_on_the_sky(data_dir, tmp_path, caplog):
    """OVRO-LWA (all-sky, 2 m dipoles): the longest-baseline pixel is 2 deg; 1024 such pixels would span
    2,000 deg. The default size stays inside the horizon; an explicit 1024 is refused with the span in degrees."""
    path = str(data_dir / OVRO_LWA)
    out = {"summary": str(tmp_path / "s.json")}
    with caplog.at_level("INFO", logger="portaflow.cores.radio.sizing"):
        steps.image({"ms": path}, out, {"niter": 0})
    summary = json.loads((tmp_path / "s.json").read_text())
    fov = summary["image"]["npix"] * summary["image"]["cell_arcsec"] / 3600
    assert 60 < fov <= 81.1  # the horizon: the square whose corners touch l^2 + m^2 = 1
    assert any("capped at the horizon" in r.getMessage() for r in caplog.records)
    with pytest.raises(InputError, match=r"an image of 1024 pixels of .* arcsec spans 2\d\d\d deg"):
        steps.image({"ms": path}, out, {"npix": 1024, "niter": 0})
    steps.image({"ms": path}, out, {"fov_deg": 30.0, "niter": 0})
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["image"]["npix"] * summary["image"]["cell_arcsec"] / 3600 == pytest.approx(30.0, rel=0.1)


def test_unknown_image_arg_and_strict_json(tmp_path):
    with pytest.raises(InputError, match=r"unknown image args: \['robustness'\]"):
        steps.image({"ms": str(tmp_path)}, {"dirty": str(tmp_path / "d.fits")}, {"robustness": 0})
    write_json(str(tmp_path / "s.json"), {"rms": float("nan"), "peak": [1.0, float("inf")]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"rms": None, "peak": [1.0, None]}


# ---- spectral cube ----

def test_dirty_cube_planes_equal_ducc0_per_channel_group(data_dir, tmp_path, dask_client):
    """channels_out 4 on the VLA's 64 channels, on a 2-worker Dask cluster: each plane equals ducc0 on its 16
    channels (its own weights), the FREQ axis gives each plane's centre; a channels_out that does not divide
    the channels is refused."""
    from casacore.tables import table

    path = str(data_dir / VLA)
    with table(f"{path}::SPECTRAL_WINDOW", ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    uvw, vis, w = _columns(path)
    out = {"cube": str(tmp_path / "cube.fits"), "summary": str(tmp_path / "s.json")}
    steps.image({"ms": path}, out, {"npix": NPIX, "cell_arcsec": CELL_ARCSEC, "niter": 0, "epsilon": 1e-7,
                                    "channels_out": 4}, client=dask_client)
    with fits.open(out["cube"]) as hdul:
        cube, header = np.asarray(hdul[0].data, dtype=np.float64), hdul[0].header
    assert cube.shape == (1, 4, NPIX, NPIX)
    wcs = WCS(header)
    for k in range(4):
        chans = slice(16 * k, 16 * (k + 1))
        ref, sumw = _ducc0_dirty(uvw, freq[chans], vis[:, chans], w[:, chans])
        _close(_lm(cube[0, k]), ref / sumw)
        world = wcs.pixel_to_world_values(0, 0, k, 0)
        assert world[2] == pytest.approx(np.mean(freq[chans]), rel=1e-9)
    with pytest.raises(InputError, match="channels_out 5 must divide the 64 selected channels"):
        steps.image({"ms": path}, out, {"npix": NPIX, "cell_arcsec": CELL_ARCSEC, "niter": 0, "channels_out": 5})
