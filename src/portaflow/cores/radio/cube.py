"""Spectral cubes (WSClean's ``-channels-out``): dirty planes, and planes deconvolved one by one on Dask.

Why a plane is one Dask task when deconvolved: the planes are independent (each its own PSF, beam, CLEAN
and major cycles), so the natural unit of parallelism is the whole CLEAN of one channel group, with its
visibilities shipped once to the worker that cleans it; every major cycle then stays on that worker.  (The
MFS image instead partitions one CLEAN's visibilities over the workers: :mod:`.imaging`.)  Each plane gets
its own fitted restoring beam, as CASA's per-plane beams and WSClean's per-channel images do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from portaflow.cores.gpu import gpu_resource_name
from portaflow.errors import InputError

from .clean import CleanResult, cotton_schwab
from .geometry import ImageGeometry
from .imaging import VisibilityImager, worker_nthreads
from .observation import Observation


def channel_groups(obs: Observation, nout: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The channels, in frequency order, cut into ``nout`` equal groups: (group centre frequencies, channel
    indices of each group).  The groups must divide the channels and have evenly spaced centres (a FITS cube's
    FREQ axis is linear): else an InputError."""
    if not 1 <= nout <= obs.nchan or obs.nchan % nout:
        raise InputError(f"channels_out {nout} must divide the {obs.nchan} selected channels (equal groups make the "
                         "cube's linear frequency axis)")
    order = np.argsort(obs.freq, kind="stable")
    groups = np.split(order, nout)
    centres = np.array([float(np.mean(obs.freq[g])) for g in groups])
    if nout > 2 and not np.allclose(np.diff(centres), centres[1] - centres[0], rtol=1e-6, atol=0):
        raise InputError(f"the {nout} channel groups' centres are not evenly spaced ({', '.join(f'{c:.6g}' for c in centres)} Hz): "
                         "a FITS cube's frequency axis is linear; image the SPWs one at a time or choose another channels_out")
    return centres, groups


def _group(obs: Observation, chans: np.ndarray) -> Observation:
    return dataclasses.replace(obs, freq=obs.freq[chans], vis=obs.vis[:, chans], weight=obs.weight[:, chans],
                               flag=obs.flag[:, chans])


def dirty_cube(obs: Observation, geom: ImageGeometry, weights: np.ndarray, nout: int, client: Any = None,
               device: str = "cpu", nthreads: int | None = None, nparts: int | None = None,
               log: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dirty images of ``nout`` channel groups, each imaged on its own (partitioned over the Dask workers when a
    client is given) and normalised by its own weights.  Returns (centre frequencies, planes (nout, npix, npix));
    a group with no weight is NaN."""
    centres, groups = channel_groups(obs, nout)
    planes = np.full((nout, geom.npix, geom.npix), np.nan)
    for k, chans in enumerate(groups):
        w = weights[:, chans]
        if not np.any(w > 0):
            if log:
                log(f"cube plane {k} ({centres[k]:.6g} Hz): no unflagged data, written as NaN")
            continue
        imager = VisibilityImager(_group(obs, chans), geom, client=client, device=device, nthreads=nthreads,
                                  nparts=nparts, weights=w)
        try:
            planes[k] = imager.dirty()
        finally:
            imager.close()
    return centres, planes


def clean_plane(obs: Observation, geom: ImageGeometry, weights: np.ndarray, device: str,
                nthreads: int | None, clean_args: Mapping[str, Any]) -> CleanResult:
    """Cotton-Schwab CLEAN of one channel group in this process (a Dask task when called by :func:`clean_cube`):
    PSF, fitted beam, minor and major cycles, restoration."""
    imager = VisibilityImager(obs, geom, device=device, nthreads=nthreads or worker_nthreads(1), weights=weights)
    try:
        return cotton_schwab(imager, **clean_args)
    finally:
        imager.close()


def clean_cube(obs: Observation, geom: ImageGeometry, weights: np.ndarray, nout: int, clean_args: Mapping[str, Any],
               client: Any = None, device: str = "cpu", nthreads: int | None = None,
               log: Callable[[str], None] | None = None) -> tuple[np.ndarray, list[CleanResult | None]]:
    """Deconvolve each of ``nout`` channel groups on its own: one :func:`clean_plane` task per group on the Dask
    cluster (in this process without a client).  Returns (centre frequencies, one CleanResult per plane, None
    for a group with no weight).  ``clean_args`` are :func:`~.clean.cotton_schwab`'s keywords (niter per plane)."""
    centres, groups = channel_groups(obs, nout)
    results: list[CleanResult | None] = [None] * nout
    todo = []
    for k, chans in enumerate(groups):
        w = np.ascontiguousarray(weights[:, chans])
        if not np.any(w > 0):
            if log:
                log(f"cube plane {k} ({centres[k]:.6g} Hz): no unflagged data, written as NaN")
            continue
        todo.append((k, _group(obs, chans), w))
    if client is None:
        for k, sub, w in todo:
            results[k] = clean_plane(sub, geom, w, device, nthreads, clean_args)
    else:
        resources = {gpu_resource_name(): 1} if device == "gpu" else None
        futures = []
        for k, sub, w in todo:
            sub_ref, w_ref = client.scatter([sub, w], hash=False)
            futures.append((k, client.submit(clean_plane, sub_ref, geom, w_ref, device, nthreads, dict(clean_args),
                                             resources=resources, pure=False)))
        for k, fut in futures:
            results[k] = fut.result()
            fut.release()
    if log:
        for k, res in enumerate(results):
            if res is not None:
                log(f"cube plane {k} ({centres[k]:.6g} Hz): {res.iterations} iterations, {res.major_cycles} major "
                    f"cycles ({res.stop_reason}), beam {res.beam.bmaj_pix:.3g} x {res.beam.bmin_pix:.3g} pix")
    return centres, results
