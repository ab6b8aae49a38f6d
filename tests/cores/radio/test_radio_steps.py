"""The workflow steps end to end: simulate -> MS -> image on a 2-worker Dask cluster -> FITS/PNG/JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from portaflow.cores.radio import steps
from portaflow.cores.radio.gridding import GPUUnavailableError
from portaflow.cores.radio.msio import read_ms, read_zarr

OUTPUTS = ("restored", "model", "residual", "dirty", "psf")


def _image_outputs(folder):
    outs = {name: str(folder / f"{name}.fits") for name in OUTPUTS}
    outs.update(preview=str(folder / "restored.png"), summary=str(folder / "summary.json"))
    return outs


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, step_args):
    folder = tmp_path_factory.mktemp("radio_steps")
    outputs = {"ms": str(folder / "sim.ms"), "zarr": str(folder / "sim.zarr"), "sky": str(folder / "sky.json")}
    steps.simulate(inputs={}, outputs=outputs, args=step_args)
    return outputs


def test_simulate_writes_ms_zarr_and_truth(simulated, step_args):
    obs = read_ms(simulated["ms"])
    assert obs.vis.dtype == np.complex64  # standard 'complex' DATA column by default
    assert obs.nvis == 16 * 15 // 2 * step_args["ntimes"] * step_args["nchan"]
    assert np.array_equal(read_zarr(simulated["zarr"]).vis, obs.vis)
    sky = json.loads(open(simulated["sky"]).read())
    assert len(sky["flux"]) == step_args["nsources"]


def test_image_step_on_dask_recovers_the_sky(simulated, dask_client, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    args = {"niter": 2000, "epsilon": 1e-6}
    steps.image(inputs={"ms": simulated["ms"]}, outputs=_image_outputs(first), args=args, client=dask_client)
    summary = json.loads((first / "summary.json").read_text())
    truth = json.loads(open(simulated["sky"]).read())
    assert summary["image"]["partitions"] == 2
    assert len(summary["sources"]) == len(truth["flux"])
    for flux, ra, dec in zip(truth["flux"], truth["ra_deg"], truth["dec_deg"], strict=True):
        src = min(summary["sources"], key=lambda s: math.hypot(s["ra_deg"] - ra, s["dec_deg"] - dec))
        assert src["flux_jy"] == pytest.approx(flux, rel=0.02)
        cell_deg = 100.0 / 3600.0
        assert math.hypot((src["ra_deg"] - ra) * math.cos(math.radians(dec)), src["dec_deg"] - dec) < cell_deg
    assert all(abs(t["flux_ratio"] - 1) < 0.02 and t["offset_pix"] <= 1 for t in summary["truth"])
    assert summary["peak_jy_per_beam"] == pytest.approx(max(truth["flux"]), rel=0.02)
    assert (first / "restored.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # deterministic: the same step again gives byte-identical JSON and PNG
    steps.image(inputs={"ms": simulated["ms"]}, outputs=_image_outputs(second), args=args, client=dask_client)
    assert (second / "summary.json").read_bytes() == (first / "summary.json").read_bytes()
    assert (second / "restored.png").read_bytes() == (first / "restored.png").read_bytes()


def test_image_step_without_client_reads_zarr(simulated, tmp_path):
    outputs = {"summary": str(tmp_path / "s.json"), "restored": str(tmp_path / "r.fits")}
    steps.image(inputs={"zarr": simulated["zarr"]}, outputs=outputs, args={"niter": 2000, "patch_half": 24})
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["image"]["partitions"] == 1
    assert all(abs(t["flux_ratio"] - 1) < 0.02 for t in summary["truth"])


def test_image_step_gpu_without_gpu_raises(simulated, tmp_path, dask_client):
    outputs = {"summary": str(tmp_path / "s.json")}
    with pytest.raises(GPUUnavailableError):
        steps.image(inputs={"ms": simulated["ms"]}, outputs=outputs, args={"device": "gpu"}, client=dask_client)
    assert not (tmp_path / "s.json").exists()


def test_bad_args_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown simulate args"):
        steps.simulate(inputs={}, outputs={"ms": str(tmp_path / "x.ms")}, args={"nant": 4})
    with pytest.raises(ValueError, match="must be int"):
        steps.simulate(inputs={}, outputs={"ms": str(tmp_path / "x.ms")}, args={"nants": "many"})
    with pytest.raises(ValueError, match="non-empty subset"):
        steps.image(inputs={"ms": str(tmp_path)}, outputs={"fits": str(tmp_path / "a.fits")}, args={})
