"""The science workflows run end to end on the local site and give physical answers. That both engines agree on
every site is the portability matrix's check (tests/e2e/test_matrix.py tests the matrix; .ci/run runs it)."""

from __future__ import annotations

import json

from testlib import SCIENCE_CASES as CASES, param_args, run_portaflow


def test_hep_summary_is_physical(tmp_path):
    path, params = CASES["hep"]
    result = run_portaflow("run", str(path), "--workdir", str(tmp_path), *param_args(params))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["dimuon_peak_bin"][0] <= 91.1876 < summary["dimuon_peak_bin"][1] + 1.0
    assert (tmp_path / "results" / "zpeak.png").stat().st_size > 10_000


def test_radio_summary_finds_the_simulated_sources(tmp_path):
    path, params = CASES["radio"]
    result = run_portaflow("run", str(path), "--workdir", str(tmp_path), *param_args(params))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "images" / "summary.json").read_text())
    truth = json.loads((tmp_path / "data" / "sky.json").read_text())
    assert len(summary["truth"]) == len(truth["flux"]) == 3
    for match in summary["truth"]:  # every simulated source found, at its pixel, with its flux
        assert match["offset_pix"] <= 1.0 and abs(match["flux_ratio"] - 1) < 0.02
