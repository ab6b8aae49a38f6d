"""The science workflows run end to end on the local site and give physical answers. That both engines agree on
every site is the portability matrix's check (tests/e2e/test_matrix.py tests the matrix; .ci/run runs it). The runs
are the session's shared host runs (`science_on_local`, tests/conftest.py), which the podman and CWL export tests
compare with."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.xdist_group("science-local")


def test_hep_summary_is_physical(science_on_local):
    workdir = science_on_local("hep")
    summary = json.loads((workdir / "results" / "summary.json").read_text())
    assert summary["dimuon_peak_bin"][0] <= 91.1876 < summary["dimuon_peak_bin"][1] + 1.0
    assert (workdir / "results" / "zpeak.png").stat().st_size > 10_000


def test_radio_summary_finds_the_simulated_sources(science_on_local):
    workdir = science_on_local("radio")
    summary = json.loads((workdir / "images" / "summary.json").read_text())
    truth = json.loads((workdir / "data" / "sky.json").read_text())
    assert len(summary["truth"]) == len(truth["flux"]) == 3
    for match in summary["truth"]:  # every simulated source found, at its pixel, with its flux
        assert match["offset_pix"] <= 1.0 and abs(match["flux_ratio"] - 1) < 0.02
