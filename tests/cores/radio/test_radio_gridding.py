"""Gridding accuracy against a direct w-DFT written here (no code shared with the library)."""

from __future__ import annotations

import numpy as np
import pytest

from portaflow.cores.radio.gpu import numpy_es_backend
from portaflow.cores.radio.gridding import CPU_BACKEND, GPUUnavailableError, ImageGeometry, get_backend

from testlib import gpu_unavailable

C = 299_792_458.0


def _lmn(npix: int, cell: float):
    x = (np.arange(npix) - npix // 2) * cell
    l, m = np.meshgrid(x, x, indexing="ij")  # axis 0: l (east), axis 1: m (north)
    return l.ravel(), m.ravel(), np.sqrt(1.0 - l.ravel() ** 2 - m.ravel() ** 2) - 1.0


def direct_dirty(uvw_m, freq, vis, npix, cell, use_w=True):
    """I(l, m) = Re sum_k V_k exp(-2 pi i (u l + v m + w (n - 1))), every pixel, every visibility."""
    l, m, n1 = _lmn(npix, cell)
    img = np.zeros(l.size)
    for c, f in enumerate(freq):
        uvw = uvw_m * (f / C)
        for s in range(0, uvw.shape[0], 256):
            u, v, w = (uvw[s:s + 256, k][:, None] for k in range(3))
            phase = -2 * np.pi * (u * l + v * m + (w * n1 if use_w else 0.0))
            img += (vis[s:s + 256, c] @ np.exp(1j * phase)).real
    return img.reshape(npix, npix)


def direct_predict(uvw_m, freq, model, cell):
    """V_k = sum over non-zero pixels of I exp(+2 pi i (u l + v m + w (n - 1)))."""
    npix = model.shape[0]
    l, m, n1 = _lmn(npix, cell)
    keep = model.ravel() != 0
    flux, l, m, n1 = model.ravel()[keep], l[keep], m[keep], n1[keep]
    out = np.zeros((uvw_m.shape[0], len(freq)), dtype=complex)
    for c, f in enumerate(freq):
        uvw = uvw_m * (f / C)
        phase = 2 * np.pi * (uvw[:, 0:1] * l + uvw[:, 1:2] * m + uvw[:, 2:3] * n1)
        out[:, c] = np.exp(1j * phase) @ flux
    return out


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def reference_dirty(wide_obs):
    obs, geom = wide_obs
    return direct_dirty(obs.uvw, obs.freq, obs.vis, geom.npix, geom.cell)


def test_simulated_visibilities_equal_direct_dft(wide_obs, true_model):
    obs, geom = wide_obs
    expected = direct_predict(obs.uvw, obs.freq, true_model(obs, geom.npix), geom.cell)
    assert rel(obs.vis, expected) < 1e-12


@pytest.mark.parametrize("backend", [CPU_BACKEND, numpy_es_backend()], ids=["ducc0", "es-numpy"])
@pytest.mark.parametrize("epsilon", [1e-5, 1e-7])
def test_dirty_image_matches_direct_wdft(wide_obs, reference_dirty, backend, epsilon):
    obs, geom = wide_obs
    g = ImageGeometry(geom.npix, geom.cell, epsilon, True)
    err = rel(backend.vis2dirty(obs.uvw, obs.freq, obs.vis, None, g, 2), reference_dirty)
    assert err <= epsilon, f"{backend.name}: relative L2 error {err:.3g} > epsilon {epsilon}"


def test_ignoring_w_is_visibly_wrong(wide_obs, reference_dirty):
    """The field is wide enough that the w term matters: without it the image is off by > 5%."""
    obs, geom = wide_obs
    g = ImageGeometry(geom.npix, geom.cell, 1e-7, do_wgridding=False)
    err = rel(CPU_BACKEND.vis2dirty(obs.uvw, obs.freq, obs.vis, None, g, 1), reference_dirty)
    assert err > 0.05
    # and the w-free image is what a DFT without w gives: the gridder, not the data, made the difference
    flat = direct_dirty(obs.uvw, obs.freq, obs.vis, geom.npix, geom.cell, use_w=False)
    assert rel(CPU_BACKEND.vis2dirty(obs.uvw, obs.freq, obs.vis, None, g, 1), flat) < 1e-6


@pytest.mark.parametrize("backend", [CPU_BACKEND, numpy_es_backend()], ids=["ducc0", "es-numpy"])
def test_degridding_matches_direct_prediction(wide_obs, backend):
    obs, geom = wide_obs
    rng = np.random.default_rng(3)
    model = np.zeros((geom.npix, geom.npix))
    idx = rng.integers(0, geom.npix, size=(40, 2))
    model[idx[:, 0], idx[:, 1]] = rng.uniform(-1, 2, size=40)
    model[0, 0] = model[-1, -1] = model[0, -1] = 1.0  # corners: the largest w effect
    expected = direct_predict(obs.uvw, obs.freq, model, geom.cell)
    got = backend.dirty2vis(obs.uvw, obs.freq, model, geom, 2)
    assert rel(got, expected) <= geom.epsilon


@pytest.mark.parametrize("backend", [CPU_BACKEND, numpy_es_backend()], ids=["ducc0", "es-numpy"])
def test_gridding_and_degridding_are_adjoint(wide_obs, backend):
    obs, geom = wide_obs
    rng = np.random.default_rng(5)
    d = rng.normal(size=(geom.npix, geom.npix))
    v = rng.normal(size=obs.vis.shape) + 1j * rng.normal(size=obs.vis.shape)
    ad = backend.dirty2vis(obs.uvw, obs.freq, d, geom, 1)
    lhs = np.vdot(ad, v).real
    rhs = float(np.sum(d * backend.vis2dirty(obs.uvw, obs.freq, v, None, geom, 1)))
    assert abs(lhs - rhs) <= 1e-10 * np.linalg.norm(ad) * np.linalg.norm(v)


def test_weights_multiply_visibilities(wide_obs):
    obs, geom = wide_obs
    wgt = np.random.default_rng(8).uniform(0.0, 2.0, size=obs.vis.shape)
    for backend in (CPU_BACKEND, numpy_es_backend()):
        weighted = backend.vis2dirty(obs.uvw, obs.freq, obs.vis, wgt, geom, 1)
        premultiplied = backend.vis2dirty(obs.uvw, obs.freq, obs.vis * wgt, None, geom, 1)
        assert rel(weighted, premultiplied) < 1e-12


GPU_REASON = gpu_unavailable()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"no usable GPU: {GPU_REASON}")


@pytest.mark.skipif(GPU_REASON is None, reason="a usable GPU is present; the no-GPU error cannot be provoked")
def test_gpu_requested_without_gpu_raises():
    with pytest.raises(GPUUnavailableError, match="device 'gpu' was requested"):
        get_backend("gpu")


def test_unknown_device_rejected():
    with pytest.raises(ValueError, match="device must be"):
        get_backend("tpu")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("epsilon", [1e-5, 1e-7])
def test_gpu_dirty_image_matches_direct_wdft(wide_obs, reference_dirty, epsilon):
    obs, geom = wide_obs
    g = ImageGeometry(geom.npix, geom.cell, epsilon, True)
    assert rel(get_backend("gpu").vis2dirty(obs.uvw, obs.freq, obs.vis, None, g, 1), reference_dirty) <= epsilon


@pytest.mark.gpu
@needs_gpu
def test_gpu_degrid_and_adjointness(wide_obs, true_model):
    obs, geom = wide_obs
    gpu = get_backend("gpu")
    assert rel(gpu.dirty2vis(obs.uvw, obs.freq, true_model(obs, geom.npix), geom, 1), obs.vis) <= geom.epsilon
    rng = np.random.default_rng(5)
    d = rng.normal(size=(geom.npix, geom.npix))
    v = rng.normal(size=obs.vis.shape) + 1j * rng.normal(size=obs.vis.shape)
    ad = gpu.dirty2vis(obs.uvw, obs.freq, d, geom, 1)
    rhs = float(np.sum(d * gpu.vis2dirty(obs.uvw, obs.freq, v, None, geom, 1)))
    assert abs(np.vdot(ad, v).real - rhs) <= 1e-10 * np.linalg.norm(ad) * np.linalg.norm(v)
