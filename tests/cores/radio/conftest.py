"""Fixtures for the radio core: one small wide-field observation and a 2-worker Dask cluster per session.

The observation is compact (16 antennas shrunk to ~500 m, 1.0-1.2 GHz) and imaged on a 128^2 grid of
100 arcsec cells (3.6 deg field), so that ignoring the w term is clearly wrong (~0.1 relative error)
while a direct DFT over the full image stays cheap enough for the tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from portaflow.cores.radio.gridding import ImageGeometry
from portaflow.cores.radio.simulate import SimulationConfig, simulate_observation

WIDE = SimulationConfig(nants=16, ntimes=16, nchan=2, freq_start_hz=1.0e9, freq_stop_hz=1.2e9, npix=128,
                        cell_arcsec=100.0, nsources=4, layout_scale=0.06, dec_deg=-70.0, seed=7)
CLEAN_CFG = SimulationConfig(nants=16, ntimes=16, nchan=4, freq_start_hz=1.0e9, freq_stop_hz=1.2e9, npix=128,
                             cell_arcsec=100.0, nsources=4, layout_scale=0.06, dec_deg=-70.0, seed=11)
# the same observation as step args (YAML-like plain values)
STEP_ARGS = {"nants": 16, "ntimes": 16, "nchan": 4, "freq_start_hz": 1.0e9, "freq_stop_hz": 1.2e9, "npix": 128,
             "cell_arcsec": 100.0, "nsources": 4, "layout_scale": 0.06, "dec_deg": -70.0, "seed": 11}


def geometry(config: SimulationConfig, epsilon: float = 1e-5, wgridding: bool = True) -> ImageGeometry:
    return ImageGeometry(config.npix, math.radians(config.cell_arcsec / 3600.0), epsilon, wgridding)


@pytest.fixture(scope="session")
def wide_obs():
    """Noise-free wide-field observation (complex128 visibilities) and its image geometry."""
    return simulate_observation(WIDE), geometry(WIDE)


@pytest.fixture(scope="session")
def clean_obs():
    return simulate_observation(CLEAN_CFG), geometry(CLEAN_CFG)


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster with 2 single-threaded workers (threads, to stay light on a shared machine)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def true_model():
    """Function: observation, npix -> model image holding the simulated fluxes at their pixels."""

    def make(obs, npix: int) -> np.ndarray:
        img = np.zeros((npix, npix))
        sky = obs.meta["sky"]
        for f, i, j in zip(sky["flux"], sky["pix_i"], sky["pix_j"], strict=True):
            img[i, j] = f
        return img

    return make


@pytest.fixture(scope="session")
def step_args() -> dict:
    return dict(STEP_ARGS)
