"""Measurement Set (python-casacore, dask-ms) and zarr storage of an :class:`Observation`.

Why both: the Measurement Set is what radio astronomy software exchanges (CASA, WSClean, dask-ms), so
the simulator writes a real one and the imager reads real ones; zarr is the chunked, cloud-friendly
copy Dask reads cheaply.  Both round trips are exact (tested).  The MS written has one spectral window, one
field, one correlation (Stokes I, CORR_TYPE 1); the reader forms Stokes I, Q, U or V from whatever correlations an MS holds.
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
from .stokes import check_stokes, form_stokes

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
        t.putcol("DISH_DIAMETER", np.full(nant, obs.dish_diameter_m or 13.5))
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
        t.putcell("NAME", 0, obs.field_name or "SIM")
        t.putcell("NUM_POLY", 0, 0)
    with sub("OBSERVATION") as t:
        t.addrows(1)
        t.putcell("TELESCOPE_NAME", 0, obs.telescope or "portaflow-sim")


DATA_COLUMNS = ("DATA", "CORRECTED_DATA", "MODEL_DATA")
WEIGHT_COLUMNS = ("auto", "WEIGHT_SPECTRUM", "WEIGHT", "SIGMA_SPECTRUM", "SIGMA", "unit")


def read_ms(path: str, row_chunks: int = 100_000, use_daskms: bool = True, field: int | str | None = None,
            spw: int | str | list[int] | None = None, data_column: str = "DATA",
            weight_column: str = "auto", stokes: str = "I",
            interval: tuple[int, int] | list[int] | str | None = None) -> Observation:
    """Read the selected field, spectral windows and data column of a Measurement Set.

    Why a selection: a real MS may hold several fields (calibrators and targets) and several spectral
    windows; imaging them together silently mixes sources and puts the image at the wrong phase centre.
    ``field`` (FIELD row id or NAME) defaults to the only field the data hold (an InputError lists them
    when there are several); ``spw`` (an id, a list, or "0,2") defaults to every SPW of that field's data;
    ``data_column`` is DATA, CORRECTED_DATA or MODEL_DATA.  Anything asked for that the MS lacks is an
    InputError naming what it has.  Several SPWs become one channel axis (each SPW's channels in turn;
    a row of one SPW is flagged, weight 0, in the others' channels, which the gridders skip).

    Flags: FLAG or FLAG_ROW.  Weights (``weight_column``): ``auto`` takes WEIGHT_SPECTRUM where the MS
    defines it, else WEIGHT (as CASA tclean and WSClean do); SIGMA/SIGMA_SPECTRUM give 1/sigma^2; ``unit``
    gives every sample weight 1.  ``stokes`` (I, Q, U or V) is formed from the correlations the POLARIZATION
    table names (:mod:`.stokes`); autocorrelation rows are dropped (and counted in the log).  ``interval``
    ``(start, stop)`` keeps the time steps ``start <= k < stop`` of the selection's distinct TIME values
    (WSClean's ``-interval``: indices, end exclusive).  Main-table columns are read
    with dask-ms in row chunks when ``use_daskms`` is set, else with python-casacore directly; both read
    exactly the selected rows."""
    from casacore.tables import table

    if not os.path.isdir(path):
        raise FileNotFoundError(f"no Measurement Set at {path}")
    if data_column not in DATA_COLUMNS:
        raise InputError(f"{path}: data column {data_column!r} is not one of {', '.join(DATA_COLUMNS)}")
    if weight_column not in WEIGHT_COLUMNS:
        raise InputError(f"{path}: weight column {weight_column!r} is not one of {', '.join(WEIGHT_COLUMNS)}")
    stokes = check_stokes(stokes)
    steps_wanted = parse_interval(interval)
    with table(f"{path}::FIELD", ack=False) as t:
        field_names = [str(x) for x in t.getcol("NAME")] if t.nrows() else []
        phase_dirs = [np.asarray(t.getcell("PHASE_DIR", k)).reshape(-1)[:2] for k in range(t.nrows())]
    with table(f"{path}::DATA_DESCRIPTION", ack=False) as t:
        dd_spw = [int(x) for x in t.getcol("SPECTRAL_WINDOW_ID")]
        dd_pol = [int(x) for x in t.getcol("POLARIZATION_ID")]
    with table(path, ack=False) as t:
        present = set(t.colnames())
        meta = json.loads(t.getkeyword(META_KEYWORD)) if META_KEYWORD in t.keywordnames() else {}
        if data_column not in present:
            have = [c for c in DATA_COLUMNS if c in present]
            raise InputError(f"{path}: has no {data_column} column (data columns present: {', '.join(have) or 'none'})")
        if not t.nrows():
            raise InputError(f"{path}: the main table has no rows; there is nothing to image")
        field_col, ddid_col = t.getcol("FIELD_ID"), t.getcol("DATA_DESC_ID")
        field_id = _select_field(path, field, field_col, field_names)
        in_field = field_col == field_id
        spw_ids = _select_spws(path, spw, sorted({dd_spw[d] for d in np.unique(ddid_col[in_field])}), field_id)
        groups = [int(d) for d in np.unique(ddid_col[in_field]) if dd_spw[int(d)] in spw_ids]
        times_all = np.unique(t.getcol("TIME")[in_field & np.isin(ddid_col, groups)])
        time_where = _interval_where(path, times_all, steps_wanted)
        plans = []
        for ddid in groups:
            with t.query(f"FIELD_ID=={field_id} AND DATA_DESC_ID=={ddid}{time_where}") as sub:
                if time_where and not sub.nrows():  # this SPW has no data in the interval
                    continue
                weights_from = _weight_source(path, weight_column, present, sub)
                columns = ["UVW", data_column, "FLAG", "FLAG_ROW", "ANTENNA1", "ANTENNA2", "TIME"]
                columns += [c for c in (weights_from,) if c != "unit" and c not in columns]
                plans.append((ddid, weights_from, columns, None if use_daskms else {c: sub.getcol(c) for c in columns}))
    # dask-ms opens the table its own way (user locking): only after python-casacore has closed it
    reads = [(ddid, weights_from, cols if cols is not None else
              _read_main_daskms(path, columns, row_chunks, field_id, ddid, time_where))
             for ddid, weights_from, columns, cols in plans]
    freqs: dict[int, np.ndarray] = {}
    with table(f"{path}::SPECTRAL_WINDOW", ack=False) as t:
        for s in spw_ids:
            freqs[s] = np.asarray(t.getcell("CHAN_FREQ", s), dtype=np.float64)
    with table(f"{path}::POLARIZATION", ack=False) as t:
        corr_types = {ddid: [int(c) for c in np.asarray(t.getcell("CORR_TYPE", dd_pol[ddid])).ravel()]
                      for ddid, _, _ in reads}
    with table(f"{path}::ANTENNA", ack=False) as t:
        positions = np.asarray(t.getcol("POSITION"), dtype=np.float64)
        dishes = np.asarray(t.getcol("DISH_DIAMETER"), dtype=np.float64) if "DISH_DIAMETER" in t.colnames() else []
    telescope = ""
    if os.path.isdir(os.path.join(path, "OBSERVATION")):
        with table(f"{path}::OBSERVATION", ack=False) as t:
            telescope = str(t.getcell("TELESCOPE_NAME", 0)) if t.nrows() and "TELESCOPE_NAME" in t.colnames() else ""
    offsets, nchan = {}, 0
    for s in spw_ids:
        offsets[s], nchan = nchan, nchan + freqs[s].size
    parts = []
    for ddid, weights_from, cols in reads:
        data = np.asarray(cols[data_column])
        flag3 = np.asarray(cols["FLAG"], dtype=bool) | np.asarray(cols["FLAG_ROW"], dtype=bool)[:, None, None]
        weight3 = _weights(weights_from, cols, data.shape)
        vis, flag, weight = form_stokes(data, flag3, weight3, corr_types[ddid], stokes, path)
        s = dd_spw[ddid]
        if len(spw_ids) > 1:  # place this SPW's channels on the common axis; elsewhere flagged, weight 0
            full_vis = np.zeros((vis.shape[0], nchan), dtype=vis.dtype)
            full_flag = np.ones((vis.shape[0], nchan), dtype=bool)
            full_weight = np.zeros((vis.shape[0], nchan), dtype=np.float32)
            sl = slice(offsets[s], offsets[s] + freqs[s].size)
            full_vis[:, sl], full_flag[:, sl], full_weight[:, sl] = vis, flag, weight
            vis, flag, weight = full_vis, full_flag, full_weight
        parts.append((np.asarray(cols["UVW"], dtype=np.float64), vis, flag, weight,
                      np.asarray(cols["ANTENNA1"], dtype=np.int32), np.asarray(cols["ANTENNA2"], dtype=np.int32),
                      np.asarray(cols["TIME"], dtype=np.float64), int(np.asarray(cols["FLAG_ROW"], bool).sum())))
    uvw, vis, flag, weight, ant1, ant2, time = (np.concatenate([p[k] for p in parts]) for k in range(7))
    cross = _cross_correlations(path, ant1, ant2)
    nauto = int(uvw.shape[0] - ant1[cross].size)
    times_total = int(times_all.size)
    freq = np.concatenate([freqs[s] for s in spw_ids])
    selection = {"field_id": field_id, "field_name": field_names[field_id] if field_id < len(field_names) else "",
                 "spw": spw_ids, "data_column": data_column,
                 "weight_column": sorted({w for _, w, _ in reads}), "rows_read": int(uvw.shape[0]),
                 "autocorrelation_rows_dropped": nauto,
                 "flag_row_rows": sum(p[7] for p in parts), "stokes": stokes, "time_steps": times_total}
    if steps_wanted is not None:
        selection["interval"] = list(steps_wanted)
    log.info("%s: field %d (%s), SPW %s, column %s, weights %s, Stokes %s: %d rows", path, field_id,
             selection["field_name"], spw_ids, data_column, "/".join(selection["weight_column"]), stokes,
             selection["rows_read"])
    ra, dec = (float(x) for x in phase_dirs[field_id])
    return Observation(uvw=uvw[cross], freq=freq, vis=vis[cross], weight=weight[cross], flag=flag[cross],
                       antenna1=ant1[cross], antenna2=ant2[cross], time=time[cross], antenna_positions=positions,
                       phase_centre=(ra, dec), meta=meta, telescope=telescope,
                       field_name=selection["field_name"],
                       dish_diameter_m=float(np.median(dishes)) if len(dishes) else 0.0, selection=selection)


def parse_interval(interval: tuple[int, int] | list[int] | str | None) -> tuple[int, int] | None:
    """``(start, stop)`` time-step indices from a pair or a string ``"start,stop"`` (None, "" or [] : every step)."""
    if interval is None or interval == "" or (isinstance(interval, (list, tuple)) and not interval):
        return None
    try:
        parts = [int(x) for x in interval.replace(" ", "").split(",")] if isinstance(interval, str) else \
            [int(x) for x in interval]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 2 or not 0 <= parts[0] < parts[1]:
        raise InputError(f"interval {interval!r} is not 'start,stop' with 0 <= start < stop (time-step indices, "
                         "stop exclusive, as WSClean's -interval)")
    return parts[0], parts[1]


def _interval_where(path: str, times: np.ndarray, interval: tuple[int, int] | None) -> str:
    """A TaQL condition (`` AND TIME > a AND TIME < b``, "" for every step) keeping the distinct times
    ``start <= k < stop`` of the selection: its bounds lie half-way between neighbouring times, so the rows are
    selected by the query itself (both read paths read only them)."""
    if interval is None:
        return ""
    start, stop = interval
    if start >= times.size:
        raise InputError(f"{path}: interval {start},{stop} starts after the selection's {times.size} time steps")
    stop = min(stop, times.size)
    log.info("%s: time steps %d..%d of %d kept", path, start, stop - 1, times.size)
    where = f" AND TIME > {float(times[start - 1] + times[start]) / 2!r}" if start > 0 else ""
    if stop < times.size:
        where += f" AND TIME < {float(times[stop - 1] + times[stop]) / 2!r}"
    return where


def _fields_text(field_col: np.ndarray, names: list[str]) -> str:
    ids, counts = np.unique(field_col, return_counts=True)
    return ", ".join(f"{int(i)} {names[int(i)] if int(i) < len(names) else '?'!r} ({int(n)} rows)"
                     for i, n in zip(ids, counts, strict=True))


def _select_field(path: str, field: int | str | None, field_col: np.ndarray, names: list[str]) -> int:
    """The FIELD row to image: the one given (id or NAME), else the only one the data hold."""
    with_data = sorted(int(x) for x in np.unique(field_col))
    if field is None or field == "":
        if len(with_data) != 1:
            raise InputError(f"{path}: the data hold {len(with_data)} fields ({_fields_text(field_col, names)}); "
                             "choose one with 'field' (an id or a name)")
        return with_data[0]
    text = str(field).strip()
    if text.lstrip("-").isdigit():
        fid = int(text)
        if not 0 <= fid < len(names):
            raise InputError(f"{path}: has no field {fid}: its FIELD table has {len(names)} rows "
                             f"({', '.join(f'{k} {n!r}' for k, n in enumerate(names))})")
    else:
        matches = [k for k, n in enumerate(names) if n == text]
        if not matches:
            raise InputError(f"{path}: has no field named {text!r} (fields: {', '.join(repr(n) for n in names)})")
        with_rows = [k for k in matches if k in with_data]
        fid = (with_rows or matches)[0]
    if fid not in with_data:
        raise InputError(f"{path}: field {fid} ({names[fid]!r}) has no data rows; fields with data: "
                         f"{_fields_text(field_col, names)}")
    return fid


def _select_spws(path: str, spw: int | str | list[int] | None, available: list[int], field_id: int) -> list[int]:
    """SPW ids to image: those given (an int, a list, or a comma-separated string), else all of the field's."""
    if spw is None or spw == "" or spw == []:
        return available
    if isinstance(spw, str):
        try:
            wanted = [int(x) for x in spw.replace(" ", "").split(",") if x]
        except ValueError:
            raise InputError(f"{path}: spw {spw!r} is not an SPW id or a comma-separated list of ids") from None
    elif isinstance(spw, (list, tuple)):
        wanted = [int(x) for x in spw]
    else:
        wanted = [int(spw)]
    missing = [s for s in wanted if s not in available]
    if missing:
        raise InputError(f"{path}: field {field_id} has no data in SPW {', '.join(map(str, missing))} "
                         f"(SPWs with data: {', '.join(map(str, available))})")
    return sorted(set(wanted), key=wanted.index)


def _weight_source(path: str, weight_column: str, present: set[str], sub: Any) -> str:
    """The column the weights of these rows come from (``auto``: WEIGHT_SPECTRUM if defined, else WEIGHT)."""
    def defined(col: str) -> bool:
        return col in present and sub.nrows() > 0 and bool(sub.iscelldefined(col, 0))

    if weight_column == "auto":
        if defined("WEIGHT_SPECTRUM"):
            return "WEIGHT_SPECTRUM"
        if "WEIGHT" in present:
            return "WEIGHT"
        return "SIGMA"
    if weight_column != "unit" and not defined(weight_column):
        have = [c for c in WEIGHT_COLUMNS[1:-1] if defined(c)]
        raise InputError(f"{path}: has no {weight_column} values (weight columns with values: {', '.join(have) or 'none'})")
    return weight_column


def _weights(source: str, cols: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    """(nrow, nchan, ncorr) float32 weights from the chosen column (SIGMA: 1/sigma^2, 0 where sigma <= 0)."""
    if source == "unit":
        return np.ones(shape, dtype=np.float32)
    values = np.asarray(cols[source], dtype=np.float64)
    if values.ndim == 2:  # WEIGHT / SIGMA: one value per correlation, the same in every channel
        values = np.broadcast_to(values[:, None, :], shape)
    if source.startswith("SIGMA"):
        values = np.divide(1.0, values * values, out=np.zeros(shape), where=values > 0)
    return np.ascontiguousarray(values, dtype=np.float32)


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


def _read_main_daskms(path: str, columns: list[str], row_chunks: int, field_id: int, ddid: int,
                      time_where: str = "") -> dict[str, np.ndarray]:
    """Main-table columns of one FIELD_ID/DATA_DESC_ID group via dask-ms, in row chunks (``time_where``: the
    interval's TaQL condition, as :func:`_interval_where` writes it)."""
    import dask
    from daskms import xds_from_ms

    where = f"FIELD_ID=={field_id} AND DATA_DESC_ID=={ddid}{time_where}"
    datasets = xds_from_ms(path, columns=columns, group_cols=["FIELD_ID", "DATA_DESC_ID"],
                           chunks={"row": int(row_chunks)}, taql_where=where)
    chosen = [ds for ds in datasets if int(ds.attrs["FIELD_ID"]) == field_id and int(ds.attrs["DATA_DESC_ID"]) == ddid]
    if len(chosen) != 1:
        raise ValueError(f"{path}: dask-ms found {len(chosen)} groups for field {field_id}, data description {ddid}")
    ds = chosen[0]
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
    root.attrs["info"] = {"telescope": obs.telescope, "field_name": obs.field_name,
                          "dish_diameter_m": float(obs.dish_diameter_m),
                          "selection": json.loads(json.dumps(obs.selection))}


def read_zarr(path: str) -> Observation:
    """Read an observation written by :func:`write_zarr`."""
    import zarr

    root = zarr.open_group(path, mode="r")
    arrays = {name: np.asarray(root[name][...]) for name in ZARR_ARRAYS}
    ra, dec = root.attrs["phase_centre"]
    info = dict(root.attrs.get("info", {}))
    return Observation(phase_centre=(float(ra), float(dec)), meta=dict(root.attrs.get("meta", {})),
                       telescope=str(info.get("telescope", "")), field_name=str(info.get("field_name", "")),
                       dish_diameter_m=float(info.get("dish_diameter_m", 0.0)),
                       selection=dict(info.get("selection", {})), **arrays)


def read_observation(path: str, **selection: Any) -> Observation:
    """Read an MS directory (with :func:`read_ms`'s ``selection`` keywords) or a zarr store, by content.

    A zarr store holds one selection already: asking it for a field, SPW or column is an InputError."""
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "table.dat")):
        return read_ms(path, **selection)
    if os.path.isdir(path) and (os.path.exists(os.path.join(path, "zarr.json")) or os.path.exists(os.path.join(path, ".zgroup"))):
        asked = {k: v for k, v in selection.items() if v not in (None, "", [], "DATA", "auto", "I")}
        if asked:
            raise InputError(f"{path}: a zarr store holds one selection already; {sorted(asked)} apply to an MS only")
        return read_zarr(path)
    raise InputError(f"{path} is neither a Measurement Set nor a zarr store")
