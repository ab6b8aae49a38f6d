"""workflows/radio/image-ms.yaml on a real Measurement Set (the MWA Fornax A snapshot from the pinned pyuvdata
wheel, tests/testdata.py), through the real `portaflow` command with both engines on the local site: the restored
peak lands on Fornax A and both engines' outputs agree under their comparators. And the portability matrix,
which has no MS to give the workflow, calls its cells unsupported rather than failed."""

from __future__ import annotations

import json

import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from portaflow.compare import compare_workdirs
from portaflow.matrix import UNSUPPORTED, run_matrix
from portaflow.plan import make_plan
from portaflow.spec.loading import load_site, load_workflow

from testdata import PYUVDATA, wheel_data
from testlib import WORKFLOWS, run_portaflow

IMAGE_MS = WORKFLOWS / "radio" / "image-ms.yaml"
FORNAX_A = SkyCoord("03h22m41.7s", "-37d12m30s", frame="icrs")  # NGC 1316 (NED)
PARAMS = {"npix": 128, "cell_arcsec": 180.0, "niter": 100, "weighting": "briggs", "robust": 0.0}

pytestmark = pytest.mark.xdist_group("pyuvdata_wheel")


@pytest.fixture(scope="module")
def mwa_ms():
    return str(wheel_data(PYUVDATA, "pyuvdata/data/") / "1102865728_small.ms")


def test_image_ms_runs_with_both_engines_on_a_real_ms(mwa_ms, tmp_path):
    params = [w for k, v in {**PARAMS, "ms": mwa_ms}.items() for w in ("--param", f"{k}={v}")]
    dirs = {}
    for engine in ("parsl", "snakemake"):
        dirs[engine] = tmp_path / engine
        result = run_portaflow("run", str(IMAGE_MS), "--engine", engine, "--workdir", str(dirs[engine]), *params)
        assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((dirs["parsl"] / "images" / "summary.json").read_text())
    assert summary["selection"]["field_name"] == "FDS_DEC-40.0" and summary["image"]["weighting"] == "briggs"
    brightest = max(summary["sources"], key=lambda s: s["flux_jy"])
    assert SkyCoord(brightest["ra_deg"] * u.deg, brightest["dec_deg"] * u.deg).separation(FORNAX_A) < 0.5 * u.deg
    plan = make_plan(load_workflow(IMAGE_MS).workflow, load_site("local", environ={}).site, {**PARAMS, "ms": mwa_ms})
    verdicts = compare_workdirs(plan, dirs["parsl"], dirs["snakemake"])
    assert len(verdicts) == 6 and all(v.same for _, v in verdicts), [(p, v.detail) for p, v in verdicts if not v.same]


def test_matrix_without_an_ms_says_unsupported(tmp_path):
    result = run_matrix([IMAGE_MS], ["local"], ["parsl"], tmp_path, must_run=("local",), log=lambda _: None)
    (cell,) = result.cells
    assert cell.status == UNSUPPORTED and "reads observation.ms, which no step produces" in cell.reason
    assert result.ok
