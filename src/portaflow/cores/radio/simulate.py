"""Simulate an interferometer observation of point sources with an exact direct w-DFT.

Why exact: the simulated sources are the truth that the gridder, CLEAN and the products are tested
against, so the visibilities must not carry any gridding error of their own.  Sources sit at pixel
centres of a declared image geometry so that a perfect imager recovers them in single pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import C_LIGHT
from .observation import Observation

MEERKAT_LAT = math.radians(-30.7130)
MEERKAT_LON = math.radians(21.4430)


@dataclass(frozen=True)
class SkyModel:
    """Point sources: fluxes (Jy), direction cosines (rad), RA/Dec (rad) and ducc0 pixel indices."""

    flux: np.ndarray
    l: np.ndarray
    m: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    pix_i: np.ndarray
    pix_j: np.ndarray

    def to_dict(self) -> dict:
        """JSON-able form (degrees for RA/Dec) stored with the data as the simulation truth."""
        return {
            "flux": [float(x) for x in self.flux],
            "l": [float(x) for x in self.l],
            "m": [float(x) for x in self.m],
            "ra_deg": [math.degrees(x) for x in self.ra],
            "dec_deg": [math.degrees(x) for x in self.dec],
            "pix_i": [int(x) for x in self.pix_i],
            "pix_j": [int(x) for x in self.pix_j],
        }


def meerkat_like_layout(nants: int = 64, seed: int = 1, core_radius_m: float = 500.0,
                        max_radius_m: float = 4000.0, core_fraction: float = 0.7,
                        min_separation_m: float = 15.0) -> np.ndarray:
    """Return (nants, 3) local east/north/up antenna positions in metres.

    MeerKAT has 64 13.5 m dishes, about 70% inside a ~1 km core and the rest out to ~8 km baselines;
    this draws a seeded layout with that shape (Gaussian core, log-uniform outer ring) and enforces a
    minimum separation so that no two dishes collide.
    """
    if nants < 2:
        raise ValueError("an interferometer needs at least 2 antennas")
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    ncore = int(round(core_fraction * nants))
    tries = 0
    while len(positions) < nants:
        tries += 1
        if tries > 100_000:
            raise RuntimeError("could not place antennas; relax min_separation_m")
        if len(positions) < ncore:
            east, north = rng.normal(0.0, core_radius_m / 2.0, size=2)
        else:
            radius = math.exp(rng.uniform(math.log(core_radius_m), math.log(max_radius_m)))
            angle = rng.uniform(0.0, 2 * math.pi)
            east, north = radius * math.cos(angle), radius * math.sin(angle)
        candidate = np.array([east, north, rng.normal(0.0, 2.0)])
        if all(np.hypot(*(candidate[:2] - p[:2])) >= min_separation_m for p in positions):
            positions.append(candidate)
    return np.array(positions)


def enu_to_xyz(enu: np.ndarray, latitude: float) -> np.ndarray:
    """Rotate local east/north/up offsets into the equatorial frame (X to the local meridian, Z to the pole)."""
    east, north, up = enu[:, 0], enu[:, 1], enu[:, 2]
    x = -math.sin(latitude) * north + math.cos(latitude) * up
    y = east
    z = math.cos(latitude) * north + math.sin(latitude) * up
    return np.stack([x, y, z], axis=1)


def uvw_tracks(xyz: np.ndarray, hour_angles: np.ndarray, dec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Earth-rotation uvw (metres) of every baseline at every hour angle (radians).

    Returns uvw (nrow, 3), antenna1, antenna2 and the time index of each row; rows are ordered time
    major, baseline minor, as in a typical Measurement Set.  Baseline vector = antenna2 - antenna1.
    """
    a1, a2 = np.triu_indices(xyz.shape[0], k=1)
    b = xyz[a2] - xyz[a1]  # (nbl, 3)
    sin_d, cos_d = math.sin(dec), math.cos(dec)
    h = hour_angles[:, None]
    sin_h, cos_h = np.sin(h), np.cos(h)
    bx, by, bz = b[None, :, 0], b[None, :, 1], b[None, :, 2]
    u = sin_h * bx + cos_h * by
    v = -sin_d * cos_h * bx + sin_d * sin_h * by + cos_d * bz
    w = cos_d * cos_h * bx - cos_d * sin_h * by + sin_d * bz
    ntime, nbl = len(hour_angles), len(a1)
    uvw = np.stack([u, v, w], axis=-1).reshape(ntime * nbl, 3)
    tindex = np.repeat(np.arange(ntime), nbl)
    return uvw, np.tile(a1, ntime).astype(np.int32), np.tile(a2, ntime).astype(np.int32), tindex


def lm_to_radec(l: np.ndarray, m: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse orthographic (SIN) projection about the phase centre."""
    n = np.sqrt(1.0 - l**2 - m**2)
    dec = np.arcsin(m * math.cos(dec0) + n * math.sin(dec0))
    ra = ra0 + np.arctan2(l, n * math.cos(dec0) - m * math.sin(dec0))
    return np.mod(ra, 2 * math.pi), dec


def point_sources_at_pixels(npix: int, cell: float, phase_centre: tuple[float, float], nsources: int = 5,
                            seed: int = 2, flux_range: tuple[float, float] = (1.0, 10.0),
                            margin_fraction: float = 0.1, min_separation_pix: int = 8) -> SkyModel:
    """Draw point sources at pixel centres of an npix x npix image with cell size ``cell`` (rad).

    The margin keeps sources away from the edges (where a clipped PSF patch would make CLEAN less
    exact); the separation keeps them resolvable from each other.
    """
    rng = np.random.default_rng(seed)
    lo, hi = int(margin_fraction * npix), int((1 - margin_fraction) * npix)
    chosen: list[tuple[int, int]] = []
    tries = 0
    while len(chosen) < nsources:
        tries += 1
        if tries > 100_000:
            raise RuntimeError("could not place sources; reduce nsources or min_separation_pix")
        i, j = (int(x) for x in rng.integers(lo, hi, size=2))
        if all(max(abs(i - a), abs(j - b)) >= min_separation_pix for a, b in chosen):
            chosen.append((i, j))
    pix = np.array(chosen, dtype=np.int64).reshape(-1, 2)
    flux = rng.uniform(*flux_range, size=nsources)
    l = (pix[:, 0] - npix // 2) * cell
    m = (pix[:, 1] - npix // 2) * cell
    ra, dec = lm_to_radec(l, m, *phase_centre)
    return SkyModel(flux=flux, l=l, m=m, ra=ra, dec=dec, pix_i=pix[:, 0], pix_j=pix[:, 1])


def predict_dft(uvw: np.ndarray, freq: np.ndarray, flux: np.ndarray, l: np.ndarray, m: np.ndarray,
                max_elements: int = 1 << 22) -> np.ndarray:
    """Exact visibilities ``sum_s F_s exp(+2 pi i (u l + v m + w (n-1)))`` for point sources.

    The sign is that of real Measurement Sets (uvw = antenna2 - antenna1, see the package docstring).

    Vectorised over (rows, channels, sources) and chunked over rows so that at most ``max_elements``
    complex phases exist at once (memory stays bounded for millions of visibilities).
    """
    nrow, nchan, nsrc = uvw.shape[0], freq.shape[0], flux.shape[0]
    vis = np.zeros((nrow, nchan), dtype=np.complex128)
    if nsrc == 0:
        return vis
    nm1 = np.sqrt(1.0 - l**2 - m**2) - 1.0
    lmn = np.stack([l, m, nm1])  # (3, nsrc)
    scale = 2j * np.pi * freq / C_LIGHT  # (nchan,)
    rows_per_chunk = max(1, max_elements // (nchan * nsrc))
    for start in range(0, nrow, rows_per_chunk):
        stop = min(nrow, start + rows_per_chunk)
        delay = uvw[start:stop] @ lmn  # (rows, nsrc) metres
        phase = np.exp(delay[:, None, :] * scale[None, :, None])  # (rows, nchan, nsrc)
        vis[start:stop] = phase @ flux
    return vis


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated observation (all seeded: same config, same data)."""

    nants: int = 64
    ntimes: int = 32
    nchan: int = 4
    freq_start_hz: float = 1.2e9
    freq_stop_hz: float = 1.4e9
    synthesis_hours: float = 6.0
    ra_deg: float = 60.0
    dec_deg: float = -45.0
    npix: int = 1024
    cell_arcsec: float = 2.5
    nsources: int = 5
    flux_min: float = 1.0
    flux_max: float = 10.0
    noise_jy: float = 0.0
    seed: int = 42
    layout_scale: float = 1.0  # multiply antenna positions (shrink to widen the field cheaply in tests)
    integration_s: float = 0.0  # 0: synthesis_hours / ntimes


def simulate_observation(config: SimulationConfig, antenna_enu: np.ndarray | None = None) -> Observation:
    """Build an :class:`Observation` from ``config`` (and an optional given ENU layout)."""
    enu = meerkat_like_layout(config.nants, seed=config.seed) if antenna_enu is None else np.asarray(antenna_enu, float)
    enu = enu * config.layout_scale
    xyz = enu_to_xyz(enu, MEERKAT_LAT)
    ra0, dec0 = math.radians(config.ra_deg), math.radians(config.dec_deg)
    half = config.synthesis_hours / 2.0
    hours = np.linspace(-half, half, config.ntimes) if config.ntimes > 1 else np.zeros(1)
    hour_angles = hours * (2 * math.pi / 24.0) * (1.0027379093)  # sidereal hours -> radians of rotation
    uvw, a1, a2, tindex = uvw_tracks(xyz, hour_angles, dec0)
    freq = np.linspace(config.freq_start_hz, config.freq_stop_hz, config.nchan) if config.nchan > 1 \
        else np.array([config.freq_start_hz])
    cell = math.radians(config.cell_arcsec / 3600.0)
    sky = point_sources_at_pixels(config.npix, cell, (ra0, dec0), config.nsources, seed=config.seed + 1,
                                  flux_range=(config.flux_min, config.flux_max))
    vis = predict_dft(uvw, freq, sky.flux, sky.l, sky.m)
    weight = np.ones(vis.shape, dtype=np.float32)
    if config.noise_jy > 0:
        rng = np.random.default_rng(config.seed + 2)
        noise = rng.normal(0.0, config.noise_jy / math.sqrt(2), size=vis.shape + (2,))
        vis = vis + noise[..., 0] + 1j * noise[..., 1]
        weight[:] = 1.0 / config.noise_jy**2
    dt = config.integration_s or (config.synthesis_hours * 3600.0 / max(config.ntimes, 1))
    mjd_start_s = 60_000.0 * 86_400.0
    time = mjd_start_s + hours[tindex] * 3600.0
    centre = np.array([5109360.0, 2006852.0, -3238948.0])  # approximate MeerKAT ITRF, metres
    cos_lon, sin_lon = math.cos(MEERKAT_LON), math.sin(MEERKAT_LON)
    itrf = np.stack([xyz[:, 0] * cos_lon - xyz[:, 1] * sin_lon, xyz[:, 0] * sin_lon + xyz[:, 1] * cos_lon,
                     xyz[:, 2]], axis=1)
    meta = {
        "simulation": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "integration_s": dt,
        "sky": sky.to_dict(),
        "image": {"npix": config.npix, "cell_arcsec": config.cell_arcsec},
    }
    return Observation(uvw=uvw, freq=freq, vis=vis, weight=weight, flag=np.zeros(vis.shape, dtype=bool),
                       antenna1=a1, antenna2=a2, time=time, antenna_positions=centre + itrf,
                       phase_centre=(ra0, dec0), meta=meta, telescope="portaflow-sim", field_name="SIM",
                       dish_diameter_m=13.5)
