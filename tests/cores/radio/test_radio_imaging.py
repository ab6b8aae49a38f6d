"""Distributed imaging equals single-process imaging; CLEAN recovers the simulated sky."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from portaflow.cores.radio.clean import Beam, beam_kernel, cotton_schwab, find_sources, fit_beam, hogbom
from portaflow.cores.radio.gridding import GPUUnavailableError, ImageGeometry
from portaflow.cores.radio.imaging import VisibilityImager, grid_chunk, make_chunk, plan_partitions


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("nparts,chan_groups", [(2, None), (4, 2), (3, 1)])
def test_partitions_cover_every_visibility_once(clean_obs, nparts, chan_groups):
    obs, geom = clean_obs
    parts = plan_partitions(obs.uvw, obs.freq, geom, nparts, chan_groups)
    assert 1 <= len(parts) <= nparts
    seen = np.zeros(obs.vis.shape, dtype=int)
    for p in parts:
        seen[p.rows, p.chan_start:p.chan_stop] += 1
    assert np.all(seen == 1)
    # within a channel group, partitions are disjoint |w| ranges (that is what saves w planes)
    groups = {}
    for p in parts:
        groups.setdefault((p.chan_start, p.chan_stop), []).append((p.w_min, p.w_max))
    for ranges in groups.values():
        ranges.sort()
        assert all(a[1] <= b[0] for a, b in pairwise(ranges))


def test_distributed_equals_single_process(clean_obs, dask_client, true_model):
    """At epsilon 1e-8 both are exact to far below 1e-6, so any partitioning/reduction error would show."""
    obs, geom0 = clean_obs
    geom = ImageGeometry(geom0.npix, geom0.cell, 1e-8, True)
    single = VisibilityImager(obs, geom, client=None, nthreads=1)
    dist = VisibilityImager(obs, geom, client=dask_client)
    try:
        assert len(dist.partitions) == 2
        model = 0.5 * true_model(obs, geom.npix)
        for kind, a, b in (("dirty", dist.dirty(), single.dirty()), ("psf", dist.psf(), single.psf()),
                           ("residual", dist.residual(model), single.residual(model))):
            assert rel(a, b) <= 1e-6, kind
    finally:
        dist.close()


def test_distributed_equals_serial_partitions_at_default_epsilon(clean_obs, dask_client):
    """Same partitions gridded in a loop here: the distribution and tree sum add no error of their own."""
    obs, geom = clean_obs
    dist = VisibilityImager(obs, geom, client=dask_client, nparts=3, chan_groups=1)
    try:
        serial = sum(grid_chunk(make_chunk(obs, p), geom, "cpu", "dirty", nthreads=1) for p in dist.partitions)
        assert rel(dist.dirty(), serial / dist.sumwt) <= 1e-12
    finally:
        dist.close()


def test_gpu_on_cluster_without_gpu_workers_raises(clean_obs, dask_client):
    obs, geom = clean_obs
    with pytest.raises(GPUUnavailableError, match="no Dask worker advertises the resource"):
        VisibilityImager(obs, geom, client=dask_client, device="gpu")


def _naive_hogbom(res, psf, gain, niter, half):
    """Textbook Hogbom: full-image argmax, subtract the PSF within `half` pixels of the peak."""
    res = res.copy()
    n = res.shape[0]
    c = psf.shape[0] // 2
    comps = []
    for _ in range(niter):
        i, j = np.unravel_index(np.argmax(np.abs(res)), res.shape)
        f = gain * res[i, j]
        comps.append((int(i), int(j), f))
        big = np.zeros((n + 2 * c, n + 2 * c))
        big[i:i + psf.shape[0], j:j + psf.shape[1]] = psf  # psf centre lands on (i + c, j + c)
        window = np.zeros_like(big)
        window[max(0, i + c - half):i + c + half + 1, max(0, j + c - half):j + c + half + 1] = 1.0
        res -= f * (big * window)[c:c + n, c:c + n]
    return comps, res


@pytest.mark.parametrize("patch_half", [None, 10])
def test_tiled_hogbom_equals_textbook_hogbom(patch_half):
    """Both peak searches (plain argmax for full-PSF patches, per-tile maxima for small patches)."""
    rng = np.random.default_rng(4)
    n = 96
    x = np.arange(2 * n) - n
    psf = np.exp(-(x[:, None] ** 2 + 0.5 * x[None, :] ** 2) / 18.0) * np.cos(x[:, None] / 3.0)
    img = rng.normal(0, 0.05, size=(n, n))
    for i, j, f in ((10, 20, 3.0), (50, 51, -2.0), (90, 5, 1.5)):
        img[i, j] += f
    dirty = np.zeros((n, n))
    for i in range(n):  # exact convolution of img with the psf, psf centred on each pixel
        for j in np.nonzero(img[i])[0]:
            dirty += img[i, j] * psf[n - i:2 * n - i, n - j:2 * n - j]
    model, res, done = hogbom(dirty, psf, gain=0.2, niter=60, tile=16, patch_half=patch_half)
    comps, ref_res = _naive_hogbom(dirty, psf, 0.2, 60, 4 * n if patch_half is None else patch_half)
    assert done == 60
    ref_model = np.zeros((n, n))
    for i, j, f in comps:
        ref_model[i, j] += f
    assert np.allclose(model, ref_model, rtol=0, atol=1e-12)
    assert np.allclose(res, ref_res, rtol=0, atol=1e-10)


def test_hogbom_stops_at_threshold():
    psf = np.zeros((64, 64))
    psf[32, 32] = 1.0
    img = np.zeros((64, 64))
    img[5, 7] = 1.0
    model, res, done = hogbom(img, psf, gain=0.5, threshold=0.1, niter=100)
    assert done == 4 and abs(res[5, 7] - 0.0625) < 1e-15 and abs(model[5, 7] - 0.9375) < 1e-15


def test_beam_fit_recovers_a_gaussian():
    beam = Beam(bmaj_pix=9.0, bmin_pix=5.0, bpa_deg=30.0)
    psf = np.zeros((128, 128))
    k = beam_kernel(beam, 40)
    h = k.shape[0] // 2
    psf[64 - h:64 + h + 1, 64 - h:64 + h + 1] = k
    fit = fit_beam(psf)
    assert fit.bmaj_pix == pytest.approx(9.0, rel=1e-3)
    assert fit.bmin_pix == pytest.approx(5.0, rel=1e-3)
    assert fit.bpa_deg == pytest.approx(30.0, abs=0.1)
    # position angle north through east: the major axis points to +m (north) rotated towards +l (east)
    dl, dm = math.sin(math.radians(30.0)), math.cos(math.radians(30.0))
    assert psf[64 + round(4 * dl), 64 + round(4 * dm)] > psf[64 + round(4 * dm), 64 - round(4 * dl)]


@pytest.mark.parametrize("patch_half", [None, 24])
def test_clean_recovers_sources(clean_obs, patch_half):
    obs, geom = clean_obs
    result = cotton_schwab(VisibilityImager(obs, geom), niter=2000, gain=0.1, threshold_rel=1e-3,
                           patch_half=patch_half)
    assert result.stop_reason == "threshold"
    assert result.major_cycles >= 2
    found = find_sources(result.model, result.beam, min_flux=0.1)
    sky = obs.meta["sky"]
    assert len(found) == len(sky["flux"])
    for f, i, j in zip(sky["flux"], sky["pix_i"], sky["pix_j"], strict=True):
        best = min(found, key=lambda s: math.hypot(s["i"] - i, s["j"] - j))
        assert math.hypot(best["i"] - i, best["j"] - j) <= 1.0
        assert best["flux"] == pytest.approx(f, rel=0.02)
    # the restored image peaks at the brightest source with (nearly) its flux in Jy/beam
    k = int(np.argmax(sky["flux"]))
    assert result.restored[sky["pix_i"][k], sky["pix_j"][k]] == pytest.approx(sky["flux"][k], rel=0.02)
    assert np.abs(result.residual).max() < 0.01 * max(sky["flux"])
