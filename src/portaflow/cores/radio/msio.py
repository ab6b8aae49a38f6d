"""Measurement Set (python-casacore, dask-ms) and zarr storage of an :class:`Observation`.

Why both: the Measurement Set is what radio astronomy software exchanges (CASA, WSClean, dask-ms), so
the simulator writes a real one and the imager reads real ones; zarr is the chunked, cloud-friendly
copy Dask reads cheaply.  Both round trips are exact (tested).  The MS written has one spectral window, one
field, one correlation (Stokes I, CORR_TYPE 1); the reader forms Stokes I from whatever correlations an MS holds.
The simulation truth and image hints travel in a table keyword
(``PORTAFLOW_META``, JSON) so an MS is self-describing for the imaging step.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any

import numpy as np

from portaflow.errors import InputError

from .observation import Observation
from .stokes import stokes_i

log = logging.getLogger(__name__)

META_KEYWORD = "PORTAFLOW_META"
STOKES_I = 1  # casacore Stokes enum: I


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def write_ms(obs: Observation, path: str, overwrite: bool = True) -> None:
    """Write ``obs`` as a Measurement Set directory at ``path`` (MS v2 main table and subtables).

    Weights go to WEIGHT_SPECTRUM (float32, as the MS defines it): give float32 weights for an exact
    round trip."""
    from casacore.tables import default_ms, makearrcoldesc, maketabdesc, table

    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(path)
        _remove(path)
    nrow, nchan = obs.vis.shape
    # complex64 data go to the standard 'complex' DATA column; complex128 (exact simulations) to 'dcomplex'
    single = obs.vis.dtype == np.complex64
    extra = maketabdesc([
        makearrcoldesc("DATA", 0j, ndim=2, shape=[nchan, 1], valuetype="complex" if single else "dcomplex",
                       options=4),
        makearrcoldesc("WEIGHT_SPECTRUM", 0.0, ndim=2, shape=[nchan, 1], valuetype="float", options=4),
    ])
    ms = default_ms(path, extra)
    try:
        ms.addrows(nrow)
        ms.putcol("UVW", obs.uvw)
        ms.putcol("DATA", obs.vis.reshape(nrow, nchan, 1))
        ms.putcol("FLAG", obs.flag.reshape(nrow, nchan, 1))
        ms.putcol("WEIGHT_SPECTRUM", obs.weight.reshape(nrow, nchan, 1).astype(np.float32))
        ms.putcol("WEIGHT", np.ones((nrow, 1), dtype=np.float32))
        ms.putcol("SIGMA", np.ones((nrow, 1), dtype=np.float32))
        ms.putcol("ANTENNA1", obs.antenna1.astype(np.int32))
        ms.putcol("ANTENNA2", obs.antenna2.astype(np.int32))
        ms.putcol("TIME", obs.time)
        ms.putcol("TIME_CENTROID", obs.time)
        interval = float(obs.meta.get("integration_s", 0.0))
        ms.putcol("INTERVAL", np.full(nrow, interval))
        ms.putcol("EXPOSURE", np.full(nrow, interval))
        ms.putcol("FLAG_ROW", np.zeros(nrow, dtype=bool))
        ms.putkeyword(META_KEYWORD, json.dumps(obs.meta, sort_keys=True))
    finally:
        ms.close()

    def sub(name: str) -> Any:
        return table(f"{path}::{name}", readonly=False, ack=False)

    nant = obs.antenna_positions.shape[0]
    with sub("ANTENNA") as t:
        t.addrows(nant)
        t.putcol("POSITION", obs.antenna_positions)
        t.putcol("NAME", [f"m{k:03d}" for k in range(nant)])
        t.putcol("STATION", [f"m{k:03d}" for k in range(nant)])
        t.putcol("DISH_DIAMETER", np.full(nant, 13.5))
        t.putcol("TYPE", ["GROUND-BASED"] * nant)
        t.putcol("MOUNT", ["ALT-AZ"] * nant)
    width = float(obs.freq[1] - obs.freq[0]) if nchan > 1 else 1e6
    with sub("SPECTRAL_WINDOW") as t:
        t.addrows(1)
        t.putcell("CHAN_FREQ", 0, obs.freq)
        t.putcell("CHAN_WIDTH", 0, np.full(nchan, width))
        t.putcell("EFFECTIVE_BW", 0, np.full(nchan, abs(width)))
        t.putcell("RESOLUTION", 0, np.full(nchan, abs(width)))
        t.putcell("NUM_CHAN", 0, nchan)
        t.putcell("REF_FREQUENCY", 0, float(obs.freq[0]))
        t.putcell("TOTAL_BANDWIDTH", 0, abs(width) * nchan)
        t.putcell("NAME", 0, "SPW0")
        t.putcell("MEAS_FREQ_REF", 0, 5)  # TOPO
    with sub("POLARIZATION") as t:
        t.addrows(1)
        t.putcell("NUM_CORR", 0, 1)
        t.putcell("CORR_TYPE", 0, np.array([STOKES_I], dtype=np.int32))
        t.putcell("CORR_PRODUCT", 0, np.zeros((1, 2), dtype=np.int32))
    with sub("DATA_DESCRIPTION") as t:
        t.addrows(1)
        t.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        t.putcell("POLARIZATION_ID", 0, 0)
    direction = np.array([[obs.phase_centre[0], obs.phase_centre[1]]])
    with sub("FIELD") as t:
        t.addrows(1)
        for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcell(col, 0, direction)
        t.putcell("NAME", 0, "SIM")
        t.putcell("NUM_POLY", 0, 0)


def read_ms(path: str, row_chunks: int = 100_000, use_daskms: bool = True) -> Observation:
    """Read a Measurement Set written by :func:`write_ms` (or any single-SPW, single-field MS).

    Main-table columns are read with dask-ms in row chunks (Dask arrays, computed here) when
    ``use_daskms`` is set, else with python-casacore directly.  Stokes I is formed from the correlations
    the POLARIZATION table names (:mod:`.stokes`); an MS that cannot give Stokes I raises InputError.
    The spectral window and polarisation setup are those of the data's DATA_DESCRIPTION row;
    autocorrelation rows are dropped (and counted in the log)."""
    from casacore.tables import table

    if not os.path.isdir(path):
        raise FileNotFoundError(f"no Measurement Set at {path}")
    columns = ["UVW", "DATA", "FLAG", "WEIGHT_SPECTRUM", "WEIGHT", "ANTENNA1", "ANTENNA2", "TIME"]
    with table(path, ack=False) as t:
        present = set(t.colnames())
        meta = json.loads(t.getkeyword(META_KEYWORD)) if META_KEYWORD in t.keywordnames() else {}
        has_wspec = "WEIGHT_SPECTRUM" in present and t.iscelldefined("WEIGHT_SPECTRUM", 0) if t.nrows() else False
        ddids = np.unique(t.getcol("DATA_DESC_ID")) if t.nrows() else np.zeros(1, dtype=int)
        if len(ddids) != 1:
            raise InputError(f"{path}: holds {len(ddids)} data descriptions (spectral windows/polarisation setups) "
                             f"{ddids.tolist()}; this reader images exactly one")
        if not use_daskms:
            cols = {c: t.getcol(c) for c in columns if c in present and (c != "WEIGHT_SPECTRUM" or has_wspec)}
    if use_daskms:
        cols = _read_main_daskms(path, [c for c in columns if c in present and (c != "WEIGHT_SPECTRUM" or has_wspec)],
                                 row_chunks)
    with table(f"{path}::DATA_DESCRIPTION", ack=False) as t:
        spw_id = int(t.getcell("SPECTRAL_WINDOW_ID", int(ddids[0])))
        pol_id = int(t.getcell("POLARIZATION_ID", int(ddids[0])))
    with table(f"{path}::SPECTRAL_WINDOW", ack=False) as t:
        freq = np.asarray(t.getcell("CHAN_FREQ", spw_id), dtype=np.float64)
    with table(f"{path}::POLARIZATION", ack=False) as t:
        corr_types = [int(c) for c in np.asarray(t.getcell("CORR_TYPE", pol_id)).ravel()]
    with table(f"{path}::FIELD", ack=False) as t:
        ra, dec = (float(x) for x in np.asarray(t.getcell("PHASE_DIR", 0)).reshape(-1)[:2])
    with table(f"{path}::ANTENNA", ack=False) as t:
        positions = np.asarray(t.getcol("POSITION"), dtype=np.float64)
    data = np.asarray(cols["DATA"])
    flag3 = np.asarray(cols["FLAG"], dtype=bool)
    if "WEIGHT_SPECTRUM" in cols:
        weight3 = np.asarray(cols["WEIGHT_SPECTRUM"], dtype=np.float32)
    else:
        weight3 = np.repeat(np.asarray(cols["WEIGHT"], dtype=np.float32)[:, None, :], data.shape[1], axis=1)
    vis, flag, weight = stokes_i(data, flag3, weight3, corr_types, path)
    ant1, ant2 = np.asarray(cols["ANTENNA1"], dtype=np.int32), np.asarray(cols["ANTENNA2"], dtype=np.int32)
    cross = _cross_correlations(path, ant1, ant2)
    return Observation(uvw=np.asarray(cols["UVW"], dtype=np.float64)[cross], freq=freq, vis=vis[cross],
                       weight=weight[cross], flag=flag[cross], antenna1=ant1[cross], antenna2=ant2[cross],
                       time=np.asarray(cols["TIME"], dtype=np.float64)[cross], antenna_positions=positions,
                       phase_centre=(ra, dec), meta=meta)


def _cross_correlations(path: str, ant1: np.ndarray, ant2: np.ndarray) -> np.ndarray | slice:
    """Rows to image: autocorrelations (ANTENNA1 == ANTENNA2) measure total power, not the sky's Fourier
    transform at a baseline, and would add a huge constant to the dirty image; imagers drop them."""
    auto = ant1 == ant2
    nauto = int(auto.sum())
    if not nauto:
        return slice(None)
    if nauto == auto.size:
        raise InputError(f"{path}: all {nauto} rows are autocorrelations; there is nothing to image")
    log.info("%s: %d autocorrelation rows of %d dropped", path, nauto, auto.size)
    return ~auto


def _read_main_daskms(path: str, columns: list[str], row_chunks: int) -> dict[str, np.ndarray]:
    """Main-table columns via dask-ms (one dataset per FIELD/DDID; this core supports exactly one)."""
    import dask
    from daskms import xds_from_ms

    datasets = xds_from_ms(path, columns=columns, group_cols=["FIELD_ID", "DATA_DESC_ID"],
                           chunks={"row": int(row_chunks)})
    if len(datasets) != 1:
        raise ValueError(f"{path}: expected one field and one spectral window, found {len(datasets)} groups")
    ds = datasets[0]
    (arrays,) = dask.compute({c: ds[c].data for c in columns}, scheduler="threads")
    return arrays


def open_ms_dask(path: str, row_chunks: int = 100_000) -> Any:
    """The main table as a lazily-read, row-chunked xarray Dataset (dask-ms), for callers that stream."""
    from daskms import xds_from_ms

    (ds,) = xds_from_ms(path, group_cols=["FIELD_ID", "DATA_DESC_ID"], chunks={"row": int(row_chunks)})
    return ds


ZARR_ARRAYS = ("uvw", "freq", "vis", "weight", "flag", "antenna1", "antenna2", "time", "antenna_positions")


def write_zarr(obs: Observation, path: str, row_chunks: int = 65_536, overwrite: bool = True) -> None:
    """Write ``obs`` to a zarr group (one array per field, row-chunked; metadata in attributes)."""
    import zarr

    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(path)
        _remove(path)
    root = zarr.open_group(path, mode="w")
    for name in ZARR_ARRAYS:
        arr = np.ascontiguousarray(getattr(obs, name))
        chunks = (min(row_chunks, arr.shape[0]),) + arr.shape[1:] if arr.ndim and arr.shape[0] else arr.shape
        z = root.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=chunks)
        z[...] = arr
    root.attrs["phase_centre"] = [float(obs.phase_centre[0]), float(obs.phase_centre[1])]
    root.attrs["meta"] = json.loads(json.dumps(obs.meta))


def read_zarr(path: str) -> Observation:
    """Read an observation written by :func:`write_zarr`."""
    import zarr

    root = zarr.open_group(path, mode="r")
    arrays = {name: np.asarray(root[name][...]) for name in ZARR_ARRAYS}
    ra, dec = root.attrs["phase_centre"]
    return Observation(phase_centre=(float(ra), float(dec)), meta=dict(root.attrs.get("meta", {})), **arrays)


def read_observation(path: str) -> Observation:
    """Read an MS directory or a zarr store, telling them apart by content."""
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "table.dat")):
        return read_ms(path)
    if os.path.isdir(path) and (os.path.exists(os.path.join(path, "zarr.json")) or os.path.exists(os.path.join(path, ".zgroup"))):
        return read_zarr(path)
    raise ValueError(f"{path} is neither a Measurement Set nor a zarr store")

