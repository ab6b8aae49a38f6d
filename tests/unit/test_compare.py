"""The one comparing module: each comparator agrees on equal data and catches a difference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from portaflow.compare import compare
from portaflow.spec.workflow import Comparison


def test_sha256_and_directories(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.txt").write_text("same")
    assert compare(tmp_path / "a", tmp_path / "b", Comparison()).same
    (tmp_path / "b" / "y.txt").write_text("extra")
    assert not compare(tmp_path / "a", tmp_path / "b", Comparison()).same


def test_json_tolerance_and_ignore(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"peak": 1.0, "when": "monday", "n": [1, 2]}))
    b.write_text(json.dumps({"peak": 1.0 + 1e-9, "when": "tuesday", "n": [1, 2]}))
    assert not compare(a, b, Comparison(method="json")).same
    assert compare(a, b, Comparison(method="json", rtol=1e-6, ignore=["when"])).same
    b.write_text(json.dumps({"peak": 1.1, "when": "monday", "n": [1, 2]}))
    verdict = compare(a, b, Comparison(method="json", rtol=1e-6))
    assert not verdict.same and "$.peak" in verdict.detail


def test_fits_ignores_dates_not_data(tmp_path):
    from astropy.io import fits

    data = np.arange(16, dtype=np.float32).reshape(4, 4)
    for name, date, scale in (("a", "2026-01-01", 1.0), ("b", "2026-02-02", 1.0), ("c", "2026-01-01", 1.001)):
        hdu = fits.PrimaryHDU(data * scale)
        hdu.header["DATE"] = date
        hdu.writeto(tmp_path / f"{name}.fits")
    how = Comparison(method="fits", rtol=1e-6)
    assert compare(tmp_path / "a.fits", tmp_path / "b.fits", how).same
    assert not compare(tmp_path / "a.fits", tmp_path / "c.fits", how).same


def test_fits_differences_are_named_in_the_verdict(tmp_path):
    """FITSDiff's findings reach the verdict: which header card or which pixels differ, and by how much."""
    from astropy.io import fits

    data = np.arange(16, dtype=np.float64).reshape(4, 4)
    for name, target, scale in (("a", "M31", 1.0), ("b", "M32", 1.0), ("c", "M31", 1.001)):
        hdu = fits.PrimaryHDU(data * scale)
        hdu.header["OBJECT"] = target
        hdu.header.add_history(f"written by run {name}")  # free text: never compared
        hdu.writeto(tmp_path / f"{name}.fits")
    fits.HDUList([fits.PrimaryHDU(data), fits.ImageHDU(data, name="PSF")]).writeto(tmp_path / "two.fits")
    a, b, c, two = (tmp_path / f"{n}.fits" for n in ("a", "b", "c", "two"))

    header = compare(a, b, Comparison(method="fits"))
    assert not header.same
    assert "Keyword OBJECT" in header.detail and "M31" in header.detail and "M32" in header.detail
    assert "fitsdiff" not in header.detail and "\n" not in header.detail  # the preamble is dropped, one line
    assert compare(a, b, Comparison(method="fits", ignore=["OBJECT"])).same

    pixels = compare(a, c, Comparison(method="fits", rtol=1e-6))
    assert not pixels.same
    assert "Data contains differences" in pixels.detail and "15 different pixels" in pixels.detail
    assert "Maximum absolute difference: 0.01" in pixels.detail  # 15 x 0.001
    assert compare(a, c, Comparison(method="fits", rtol=2e-3)).same

    hdus = compare(a, two, Comparison(method="fits", ignore=["OBJECT", "EXTEND"]))
    assert not hdus.same and "HDU" in hdus.detail


def test_root_histograms_ignore_uuid(tmp_path):
    uproot = pytest.importorskip("uproot")
    hist = pytest.importorskip("hist")
    h = hist.Hist.new.Reg(10, 0, 10).Double()
    h.fill([1, 2, 2, 5])
    for name in ("a", "b"):
        with uproot.recreate(tmp_path / f"{name}.root") as f:
            f["h"] = h
    assert (tmp_path / "a.root").read_bytes() != (tmp_path / "b.root").read_bytes()  # UUIDs differ
    assert compare(tmp_path / "a.root", tmp_path / "b.root", Comparison(method="root")).same
    h.fill([7])
    with uproot.recreate(tmp_path / "c.root") as f:
        f["h"] = h
    assert not compare(tmp_path / "a.root", tmp_path / "c.root", Comparison(method="root")).same


def test_missing_file_never_agrees(tmp_path):
    (tmp_path / "a").write_text("x")
    assert not compare(tmp_path / "a", tmp_path / "nope", Comparison()).same
