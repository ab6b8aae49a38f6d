"""Distributed imaging: visibilities partitioned by w range and channel, gridded on Dask workers.

Why not plain row chunks: every chunk gridded on its own pays the full set of FFTs and w planes of the
image, so N row chunks cost up to N times the FFT work of one call.  Sorting the rows by |w| and cutting
the w axis into contiguous ranges gives each partition only the w planes of its own range (total planes
grow by one kernel support per partition, not by a factor); channel groups are an alternative axis,
chosen by a cost model when that balances better.  Each partition stays resident on one worker for all
major cycles; partial images are summed in a tree on the workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from portaflow.cores.gpu import GPU_RESOURCE_ENV, GPUUnavailableError, gpu_resource_name

from . import C_LIGHT
from .geometry import ImageGeometry
from .gridding import get_backend
from .observation import Observation


@dataclass(frozen=True)
class Partition:
    """Rows (sorted by |w|) and a channel range [chan_start, chan_stop) gridded together."""

    rows: np.ndarray
    chan_start: int
    chan_stop: int
    w_min: float  # |w| in wavelengths at the group's centre frequency
    w_max: float
    cost: float  # model cost in visibility-equivalents (for load balance)

    @property
    def nvis(self) -> int:
        return int(self.rows.size * (self.chan_stop - self.chan_start))


@dataclass
class VisChunk:
    """The arrays of one partition, shipped once to the worker that grids it."""

    uvw: np.ndarray
    freq: np.ndarray
    vis: np.ndarray
    wgt: np.ndarray | None  # None: all weights are one

    @property
    def nvis(self) -> int:
        return int(self.vis.size)


def _support(epsilon: float) -> int:
    return int(math.ceil(math.log10(1.0 / epsilon))) + 2


def _plane_cost(geom: ImageGeometry) -> float:
    """Cost of one w plane (FFT, screen, copy) in visibility-equivalents.

    Calibrated on ducc0 0.42 at 2048^2, epsilon 1e-5 (one plane ~ 2e5 gridded visibilities): a plane
    costs ~nu^2 log2(nu) and a visibility ~support^3 kernel taps."""
    nu = 1.75 * geom.npix
    return 0.5 * nu * nu * math.log2(nu) / _support(geom.epsilon) ** 3


def _max_nm1(geom: ImageGeometry) -> float:
    half = geom.npix / 2 * geom.cell
    return 1.0 - math.sqrt(max(0.0, 1.0 - 2 * half * half))


def _split_sorted(wabs: np.ndarray, nchan: int, nparts: int, geom: ImageGeometry) -> list[tuple[int, int, float]]:
    """Cut rows sorted by |w| into <= nparts contiguous ranges minimising the largest modelled cost.

    Cost of rows [a, b) = visibilities + plane_cost * (w span / dw + support); binary search on the
    largest allowed cost with a greedy feasibility check (optimal for contiguous splits)."""
    n = wabs.size
    plane = _plane_cost(geom) if geom.do_wgridding else 0.0
    dw = 1.0 / (1.7 * max(_max_nm1(geom), 1e-30))
    supp = _support(geom.epsilon) if geom.do_wgridding else 1

    def cost(a: int, b: int) -> float:
        return (b - a) * nchan + plane * ((wabs[b - 1] - wabs[a]) / dw + supp)

    def greedy(limit: float) -> list[tuple[int, int, float]] | None:
        out, a = [], 0
        while a < n:
            if len(out) == nparts or cost(a, a + 1) > limit:
                return None
            lo, hi = a + 1, n  # largest b in [lo, hi] with cost(a, b) <= limit
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if cost(a, mid) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            out.append((a, lo, cost(a, lo)))
            a = lo
        return out

    if n == 0:
        return []
    lo, hi = cost(0, 1), cost(0, n)
    best = greedy(hi)
    for _ in range(60):
        if hi - lo <= 1e-6 * hi:
            break
        mid = 0.5 * (lo + hi)
        found = greedy(mid)
        if found is None:
            lo = mid
        else:
            hi, best = mid, found
    assert best is not None
    return best


def plan_partitions(uvw: np.ndarray, freq: np.ndarray, geom: ImageGeometry, nparts: int,
                    chan_groups: int | None = None) -> list[Partition]:
    """Partition (rows x channels) into at most ``nparts`` pieces by channel group and |w| range.

    ``chan_groups=None`` tries every number of channel groups dividing the work and keeps the plan with
    the smallest largest partition (the modelled makespan when each worker grids one partition)."""
    nchan = freq.shape[0]
    nparts = max(1, int(nparts))
    candidates = [chan_groups] if chan_groups else [g for g in range(1, min(nchan, nparts) + 1)]
    best: list[Partition] | None = None
    for groups in candidates:
        groups = max(1, min(int(groups), nchan))
        per_group = max(1, nparts // groups)
        plan: list[Partition] = []
        for chans in np.array_split(np.arange(nchan), groups):
            c0, c1 = int(chans[0]), int(chans[-1]) + 1
            fc = float(np.mean(freq[c0:c1]))
            wabs = np.abs(uvw[:, 2]) * fc / C_LIGHT
            order = np.argsort(wabs, kind="stable")
            for a, b, c in _split_sorted(wabs[order], c1 - c0, per_group, geom):
                plan.append(Partition(np.sort(order[a:b]), c0, c1, float(wabs[order[a]]),
                                      float(wabs[order[b - 1]]), float(c)))
        if best is None or max(p.cost for p in plan) < max(p.cost for p in best):
            best = plan
    assert best is not None
    return best


def make_chunk(obs: Observation, part: Partition, weights: np.ndarray | None = None) -> VisChunk:
    """Copy one partition's arrays out of the observation (weights dropped when all are one).

    ``weights``: the imaging weights of the whole observation (default: natural, flags applied)."""
    sl = slice(part.chan_start, part.chan_stop)
    wgt = (obs.imaging_weights() if weights is None else weights)[part.rows, sl]
    return VisChunk(uvw=obs.uvw[part.rows], freq=obs.freq[sl].copy(), vis=obs.vis[part.rows, sl],
                    wgt=None if np.all(wgt == 1.0) else wgt)


def worker_nthreads(default: int = 1) -> int:
    """Threads this Dask worker may use (Dask sets OMP_NUM_THREADS=1, so ducc0 must be told)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return default
    state = getattr(worker, "state", None)
    return int(getattr(state, "nthreads", None) or getattr(worker, "nthreads", default) or default)


def grid_chunk(chunk: VisChunk, geom: ImageGeometry, device: str, kind: str = "dirty",
               model: np.ndarray | None = None, nthreads: int | None = None) -> np.ndarray:
    """Unnormalised partial image of one chunk: ``dirty`` (data), ``psf`` (unit data) or ``residual``.

    ``residual`` degrids ``model`` for this chunk's visibilities and grids the difference: the
    Cotton-Schwab major cycle, done where the visibilities live."""
    backend = get_backend(device)
    threads = nthreads or worker_nthreads(1)
    if kind == "dirty":
        vis = chunk.vis
    elif kind == "psf":
        vis = np.ones_like(chunk.vis)
    elif kind == "residual":
        if model is None:
            raise ValueError("a residual needs a model image")
        vis = chunk.vis - backend.dirty2vis(chunk.uvw, chunk.freq, model, geom, threads)
    else:
        raise ValueError(f"unknown image kind {kind!r}")
    return backend.vis2dirty(chunk.uvw, chunk.freq, vis, chunk.wgt, geom, threads)


def _sum_images(*images: np.ndarray) -> np.ndarray:
    out = np.array(images[0], dtype=np.float64, copy=True)
    for img in images[1:]:
        out += img
    return out


class VisibilityImager:
    """Visibilities held as partitions (on Dask workers when a client is given) and imaged on demand.

    With ``client=None`` everything runs in this process as ONE gridder call over all data (the
    single-process reference); with a client the partitions are scattered once, each to its own
    worker, and every dirty/PSF/residual image is a set of per-partition tasks plus a tree sum.
    ``partitions`` overrides the w/channel plan (the benchmark uses it for a row-chunk baseline).
    ``weights`` are the imaging weights (:mod:`.weighting`; default natural, flags applied).
    """

    def __init__(self, obs: Observation, geom: ImageGeometry, client: Any | None = None, device: str = "cpu",
                 nthreads: int | None = None, nparts: int | None = None, chan_groups: int | None = None,
                 partitions: list[Partition] | None = None, weights: np.ndarray | None = None) -> None:
        self.geom, self.client, self.device = geom, client, device
        weights = obs.imaging_weights() if weights is None else np.asarray(weights, dtype=np.float64)
        if weights.shape != obs.vis.shape:
            raise ValueError(f"weights have shape {weights.shape}, the visibilities {obs.vis.shape}")
        self.sumwt = float(weights.sum())
        if self.sumwt <= 0:
            raise ValueError("all visibilities are flagged or have zero weight")
        self.nvis = obs.nvis
        self._resources: dict[str, int] | None = None
        if client is None:
            get_backend(device)  # fail now (clearly) if the GPU is unusable
            self.nthreads = nthreads or 1
            wgt = None if np.all(weights == 1.0) else weights
            self.partitions: list[Partition] = []
            self._chunks: list[Any] = [VisChunk(obs.uvw, obs.freq, obs.vis, wgt)]
            return
        workers = self._eligible_workers()
        self.nthreads = nthreads
        self.partitions = partitions or plan_partitions(obs.uvw, obs.freq, geom, nparts or len(workers), chan_groups)
        # longest-processing-time assignment of partitions to workers
        loads = {w: 0.0 for w in workers}
        self._chunks = []
        self._workers: list[str] = []
        for part in sorted(self.partitions, key=lambda p: -p.cost):
            target = min(loads, key=lambda w: (loads[w], w))
            loads[target] += part.cost
            fut = client.scatter(make_chunk(obs, part, weights), workers=[target], direct=False)
            self._chunks.append(fut)
            self._workers.append(target)

    def _eligible_workers(self) -> list[str]:
        info = self.client.scheduler_info(n_workers=-1) if _accepts_n_workers(self.client) else self.client.scheduler_info()
        workers = info.get("workers", {})
        if self.device == "gpu":
            name = gpu_resource_name()
            gpu_workers = sorted(a for a, w in workers.items() if w.get("resources", {}).get(name, 0) >= 1)
            if not gpu_workers:
                raise GPUUnavailableError(f"device 'gpu' was requested but no Dask worker advertises the resource "
                                          f"{name!r} (set by {GPU_RESOURCE_ENV})")
            self._resources = {name: 1}
            return gpu_workers
        if not workers:
            raise RuntimeError("the Dask cluster has no workers")
        return sorted(workers)

    def _image(self, kind: str, model: np.ndarray | None = None) -> np.ndarray:
        if self.client is None:
            total = grid_chunk(self._chunks[0], self.geom, self.device, kind, model, self.nthreads)
            return total / self.sumwt
        model_ref = self.client.scatter(model, broadcast=True) if model is not None else None
        futures = [self.client.submit(grid_chunk, chunk, self.geom, self.device, kind, model_ref, self.nthreads,
                                      workers=[worker], resources=self._resources, pure=False)
                   for chunk, worker in zip(self._chunks, self._workers, strict=True)]
        while len(futures) > 1:  # tree reduction on the workers
            futures = [self.client.submit(_sum_images, *futures[i:i + 2], pure=False) if i + 1 < len(futures)
                       else futures[i] for i in range(0, len(futures), 2)]
        return self.client.gather(futures[0]) / self.sumwt

    def dirty(self) -> np.ndarray:
        """Dirty image in Jy/beam (normalised by the sum of the imaging weights)."""
        return self._image("dirty")

    def psf(self) -> np.ndarray:
        """Point spread function (peak 1 at pixel (npix/2, npix/2))."""
        return self._image("psf")

    def residual(self, model: np.ndarray) -> np.ndarray:
        """Residual image of the data minus the degridded ``model`` (Jy/pixel) - a major cycle."""
        return self._image("residual", np.asarray(model, dtype=np.float64))

    def close(self) -> None:
        """Release the scattered partitions."""
        if self.client is not None:
            for fut in self._chunks:
                fut.release()
            self._chunks = []


def _accepts_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def summarize_partitions(parts: Sequence[Partition]) -> list[dict[str, float]]:
    """Plain description of a plan (for logs and the JSON summary)."""
    return [{"nvis": p.nvis, "chan_start": p.chan_start, "chan_stop": p.chan_stop, "w_min": round(p.w_min, 3),
             "w_max": round(p.w_max, 3), "cost": round(float(p.cost), 1)} for p in parts]
