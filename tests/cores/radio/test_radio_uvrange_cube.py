"""Time and uv-range selection, the Gaussian taper (WSClean's -interval, -minuv-l, -maxuv-l, -taper-gaussian) and
cubes deconvolved plane by plane on Dask, on real MSs from the pyuvdata 3.1.3 wheel.

The references are computed here from the MS columns (python-casacore) with ducc0's wgridder called directly: the
selected and tapered weights are written from their definitions (uv distance sqrt(u^2 + v^2) / lambda per channel;
the taper as the Fourier pair of an image-plane Gaussian of the given FWHM), not from portaflow's code.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from astropy.io import fits
from test_radio_real_ms import MWA, VLA
from test_radio_selection import CELL_ARCSEC, NPIX, _close, _columns, _ducc0_dirty, _image, _lm

from portaflow.cores.radio import steps
from portaflow.cores.radio.clean import fit_beam
from portaflow.errors import InputError

from testdata import PYUVDATA, wheel_data

C = 299_792_458.0
pytestmark = pytest.mark.xdist_group("pyuvdata_wheel")


@pytest.fixture(scope="module")
def data_dir():
    return wheel_data(PYUVDATA, "pyuvdata/data/")


def _freq(path: str) -> np.ndarray:
    from casacore.tables import table

    with table(f"{path}::SPECTRAL_WINDOW", ack=False) as t:
        return np.asarray(t.getcell("CHAN_FREQ", 0))


def test_uv_range_and_taper_equal_ducc0_on_the_selected_tapered_weights(data_dir, tmp_path):
    """VLA scan: samples outside [minuv_l, maxuv_l] (wavelengths, per channel) get no weight; the taper multiplies
    each weight by exp(-(pi FWHM rho)^2 / (4 ln 2)); each dirty image equals ducc0 on those weights; the taper
    widens the fitted beam, the uv cut-off at the long end too."""
    path = str(data_dir / VLA)
    freq = _freq(path)
    uvw, vis, w = _columns(path)
    rho = np.hypot(uvw[:, 0:1], uvw[:, 1:2]) * freq[None, :] / C
    lo, hi = (float(np.percentile(rho[w > 0], p)) for p in (20, 80))
    selected = np.where((rho >= lo) & (rho <= hi), w, 0.0)
    assert 0.5 * np.count_nonzero(w) < np.count_nonzero(selected) < 0.7 * np.count_nonzero(w)
    fwhm = math.radians(3.0 / 3600)
    taper = np.exp(-((math.pi * fwhm * rho) ** 2) / (4 * math.log(2)))
    assert taper[w > 0].min() < 0.5  # the taper really bites on this array
    plain, plain_header, _ = _image(tmp_path, path)
    for args, weights in (({"minuv_l": lo, "maxuv_l": hi}, selected), ({"taper_gaussian_arcsec": 3.0}, w * taper),
                          ({"minuv_l": lo, "maxuv_l": hi, "taper_gaussian_arcsec": 3.0}, selected * taper)):
        ref, sumw = _ducc0_dirty(uvw, freq, vis, weights)
        img, header, summary = _image(tmp_path, path, **args)
        _close(img, ref / sumw)
        assert {k: summary["image"][k] for k in args} == pytest.approx(args)
        assert all(k in "".join(header["HISTORY"]) for k in args), header["HISTORY"]
        if "taper_gaussian_arcsec" in args:
            assert header["BMAJ"] * header["BMIN"] > 1.2 * plain_header["BMAJ"] * plain_header["BMIN"]
    # uniform weighting counts only the selected samples in its uv cells: the image still equals ducc0 with the
    # selection applied to the natural weights first
    from portaflow.cores.radio.geometry import ImageGeometry
    from portaflow.cores.radio.weighting import imaging_weights

    geom = ImageGeometry(NPIX, math.radians(CELL_ARCSEC / 3600), 1e-7)
    uniform_sel = imaging_weights(uvw, freq, selected, geom, "uniform")
    ref, sumw = _ducc0_dirty(uvw, freq, vis, uniform_sel)
    img, _, _ = _image(tmp_path, path, minuv_l=lo, maxuv_l=hi, weighting="uniform")
    _close(img, ref / sumw)


def test_time_interval_selects_time_steps(data_dir, tmp_path):
    """interval 3,9 keeps the 4th to 9th of the scan's 15 distinct times (WSClean's -interval: end exclusive)."""
    from casacore.tables import table

    path = str(data_dir / VLA)
    with table(path, ack=False) as t:
        times = np.unique(t.getcol("TIME"))
    assert times.size == 15
    uvw, vis, w = _columns(path, f"TIME > {float(times[2] + times[3]) / 2!r} AND TIME < {float(times[8] + times[9]) / 2!r}")
    ref, sumw = _ducc0_dirty(uvw, _freq(path), vis, w)
    img, header, summary = _image(tmp_path, path, interval="3,9")
    _close(img, ref / sumw)
    assert summary["selection"]["interval"] == [3, 9] and summary["selection"]["time_steps"] == 15
    assert "time steps 3..8 of 15" in " ".join(header["HISTORY"])
    # both read paths select the rows in the query itself: the same rows, and only them
    from portaflow.cores.radio.msio import read_ms

    direct, daskms = read_ms(path, interval=(3, 9), use_daskms=False), read_ms(path, interval="3, 9")
    assert direct.nrow == daskms.nrow == uvw.shape[0] and np.array_equal(direct.vis, daskms.vis)
    assert np.array_equal(np.unique(direct.time), times[3:9])
    assert np.array_equal(np.unique(read_ms(path, interval=(12, 40)).time), times[12:])
    with pytest.raises(InputError, match="interval 20,30 starts after the selection's 15 time steps"):
        _image(tmp_path, path, interval=[20, 30])


@pytest.mark.parametrize("args,text", [
    ({"minuv_l": 500.0, "maxuv_l": 100.0}, "image arg 'minuv_l': got 500.0; expected a uv distance below maxuv_l (100 wavelengths)"),
    ({"taper_gaussian_arcsec": -2}, "image arg 'taper_gaussian_arcsec': got -2; expected a number >= 0 (0: none)"),
    ({"maxuv_l": "far"}, "arg 'maxuv_l' must be float, got 'far'"),
    ({"interval": "9,3"}, "image arg 'interval': interval '9,3' is not 'start,stop' with 0 <= start < stop"),
    ({"channels_out": -1}, "image arg 'channels_out': got -1; expected an integer >= 0"),
    ({"weighting": "super"}, "image arg 'weighting': got 'super'; expected one of natural, uniform, briggs"),
])
def test_bad_values_are_input_errors_naming_the_arg(tmp_path, args, text):
    with pytest.raises(InputError) as err:
        steps.image({"ms": str(tmp_path / "none.ms")}, {"dirty": str(tmp_path / "d.fits")}, args)
    assert text in str(err.value) and err.value.exit_code == 2
    assert not (tmp_path / "d.fits").exists()


def test_deconvolved_cube_plane_by_plane_on_dask(data_dir, tmp_path, dask_client):
    """MWA Fornax A, 10 channels (171-199 MHz) as 2 planes, each cleaned as its own Dask task: each plane's beam
    (the BEAMS table, CASA's multi-beam convention) is the fit to ducc0's PSF of its channels, larger at the lower
    frequency; each residual plane equals ducc0's dirty image of the data minus ducc0's prediction of that plane's
    model; restored - residual holds the model's flux spread over the plane's beam."""
    import ducc0.wgridder.experimental as wg
    from casacore.tables import table

    path = str(data_dir / MWA)
    freq = _freq(path)
    with table(path, ack=False) as t:
        cross = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
        data, uvw = t.getcol("DATA")[cross], t.getcol("UVW")[cross]
        flag = t.getcol("FLAG")[cross] | t.getcol("FLAG_ROW")[cross][:, None, None]
        ws = t.getcol("WEIGHT_SPECTRUM")[cross].astype(np.float64)
    vis = 0.5 * (data[..., 0] + data[..., 3])
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(flag[..., 0] | flag[..., 3] | (ws[..., 0] + ws[..., 3] <= 0), 0.0,
                     4 * ws[..., 0] * ws[..., 3] / (ws[..., 0] + ws[..., 3]))
    npix, cell_arcsec = 256, 90.0
    cell = math.radians(cell_arcsec / 3600)
    out = {n: str(tmp_path / f"{n}.fits") for n in ("cube_restored", "cube_model", "cube_residual", "cube")}
    steps.image({"ms": path}, {**out, "summary": str(tmp_path / "s.json")},
                {"npix": npix, "cell_arcsec": cell_arcsec, "niter": 60, "epsilon": 1e-7, "channels_out": 2,
                 "max_major": 3}, client=dask_client)
    planes = json.loads((tmp_path / "s.json").read_text())["cube"]["planes"]
    cubes = {}
    for name, fname in out.items():
        with fits.open(fname) as hdul:
            cubes[name] = np.asarray(hdul[0].data, np.float64)[0]
            header = hdul[0].header
            beams = hdul["BEAMS"].data
            assert header["CASAMBM"] is True and "BMAJ" not in header and hdul["BEAMS"].header["NCHAN"] == 2
            assert header["BUNIT"] == ("JY/PIXEL" if name == "cube_model" else "JY/BEAM")
    assert beams["BMAJ"][0] > beams["BMAJ"][1]  # 178 MHz plane: a larger beam than the 192 MHz one
    kw = dict(pixsize_x=cell, pixsize_y=cell, epsilon=1e-7, do_wgridding=True,
              flip_u=True, flip_v=True, flip_w=False, divide_by_n=False, nthreads=1)
    for k, chans in enumerate((slice(0, 5), slice(5, 10))):
        f, v, wk = freq[chans], vis[:, chans], w[:, chans]
        psf = wg.vis2dirty(uvw=uvw, freq=f, vis=np.ones_like(v, np.complex128), wgt=wk, npix_x=npix, npix_y=npix, **kw) / wk.sum()
        beam = fit_beam(psf)
        assert beams["BMAJ"][k] == pytest.approx(beam.bmaj_pix * cell_arcsec, rel=1e-3)
        assert beams["BMIN"][k] == pytest.approx(beam.bmin_pix * cell_arcsec, rel=1e-3)
        assert planes[k]["bmaj_arcsec"] == pytest.approx(beams["BMAJ"][k], rel=1e-5) and planes[k]["iterations"] == 60
        assert planes[k]["freq_hz"] == pytest.approx(np.mean(f))
        model = _lm(cubes["cube_model"][k])
        assert np.count_nonzero(model) > 0
        pred = wg.dirty2vis(uvw=uvw, freq=f, dirty=model, **kw)
        ref = wg.vis2dirty(uvw=uvw, freq=f, vis=(v - pred).astype(np.complex128), wgt=wk, npix_x=npix, npix_y=npix, **kw) / wk.sum()
        dirty = wg.vis2dirty(uvw=uvw, freq=f, vis=v.astype(np.complex128), wgt=wk, npix_x=npix, npix_y=npix, **kw) / wk.sum()
        _close(_lm(cubes["cube_residual"][k]), ref, 1e-4)
        _close(_lm(cubes["cube"][k]), dirty, 1e-5)
        assert np.abs(ref).max() < 0.7 * np.abs(dirty).max()  # CLEAN took flux from the peak
        # restored - residual is the model convolved with the plane's unit-peak Gaussian: flux x beam area (pixels)
        area = math.pi / (4 * math.log(2)) * beams["BMAJ"][k] * beams["BMIN"][k] / cell_arcsec**2
        smoothed = cubes["cube_restored"][k] - cubes["cube_residual"][k]
        assert smoothed.sum() == pytest.approx(model.sum() * area, rel=0.02)
