"""Workflow steps of the radio core: the callables a portaflow workflow names (``module:function``).

Contract (see the project docs): ``function(inputs, outputs, args[, client])`` with ``inputs``/``outputs``
dicts of paths and ``args`` plain YAML values; write every output completely or raise.  The steps
only translate args into the library calls; all arguments are documented in docs/cores/radio.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from portaflow.errors import InputError

from .clean import cotton_schwab, find_sources
from .cube import clean_cube, dirty_cube
from .geometry import ImageGeometry
from .gridding import get_backend
from .imaging import VisibilityImager, summarize_partitions
from .msio import parse_interval, read_observation, write_ms, write_zarr
from .observation import Observation
from .products import ImageInfo, fits_pixel, mjd_seconds_to_isot, robust_rms, source_table, write_cube, write_fits, write_json, write_png
from .simulate import SimulationConfig, simulate_observation
from .sizing import image_geometry
from .stokes import STOKES, STOKES_CODE
from .weighting import SCHEMES, imaging_weights

IMAGE_OUTPUTS = ("restored", "model", "residual", "dirty", "psf", "cube", "cube_restored", "cube_model",
                 "cube_residual", "preview", "summary")
CLEAN_CUBE_OUTPUTS = {"cube_restored": "JY/BEAM", "cube_model": "JY/PIXEL", "cube_residual": "JY/BEAM"}


class ArgError(InputError, ValueError):
    """A step arg of the wrong type or out of range (an InputError: exit 2; a ValueError for older callers)."""


def _log(msg: str) -> None:
    print(f"[radio] {msg}", flush=True)


def _arg(args: Mapping[str, Any], name: str, default: Any, kind: type) -> Any:
    value = args.get(name, default)
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ArgError(f"arg {name!r} must be {kind.__name__}, got {value!r}") from exc


def _single_input(inputs: Mapping[str, Any], preferred: tuple[str, ...]) -> str:
    for name in preferred:
        if name in inputs:
            value = inputs[name]
            break
    else:
        if len(inputs) != 1:
            raise ValueError(f"expected an input named one of {preferred}, got {sorted(inputs)}")
        value = next(iter(inputs.values()))
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"expected one path, got {len(value)}")
        value = value[0]
    return str(value)


def simulation_config(args: Mapping[str, Any]) -> SimulationConfig:
    """SimulationConfig from step args (unknown args are rejected so typos do not pass silently)."""
    fields = SimulationConfig.__dataclass_fields__
    known = set(fields) | {"precision", "row_chunks"}
    unknown = set(args) - known
    if unknown:
        raise ValueError(f"unknown simulate args: {sorted(unknown)}")
    values = {}
    for name, f in fields.items():
        if name in args:
            values[name] = _arg(args, name, None, type(f.default))
    return SimulationConfig(**values)


def simulate(inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any]) -> None:
    """Simulate an observation and write it: ``outputs['ms']`` (MS directory), optionally ``'zarr'``
    (zarr copy) and ``'sky'`` (JSON truth).  ``inputs['layout']`` (optional): text file of antenna
    east/north/up metres, one antenna per line."""
    if not any(k in outputs for k in ("ms", "zarr")):
        raise ValueError("simulate needs an output named 'ms' or 'zarr'")
    config = simulation_config(args)
    layout = np.loadtxt(str(inputs["layout"]), ndmin=2)[:, :3] if inputs and "layout" in inputs else None
    t0 = time.perf_counter()
    obs = simulate_observation(config, antenna_enu=layout)
    precision = str(args.get("precision", "single"))
    if precision not in {"single", "double"}:
        raise ValueError("precision must be 'single' (standard complex DATA) or 'double'")
    if precision == "single":
        obs.vis = obs.vis.astype(np.complex64)
    _log(f"simulated {obs.nvis} visibilities ({obs.nrow} rows x {obs.nchan} channels) in "
         f"{time.perf_counter() - t0:.2f} s")
    if "ms" in outputs:
        write_ms(obs, outputs["ms"])
    if "zarr" in outputs:
        write_zarr(obs, outputs["zarr"], row_chunks=_arg(args, "row_chunks", 65_536, int))
    if "sky" in outputs:
        write_json(outputs["sky"], {"phase_centre_deg": [config.ra_deg, config.dec_deg], **obs.meta["sky"]})


def to_zarr(inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any]) -> None:
    """Convert an MS (``inputs['ms']``) to a zarr store (``outputs['zarr']``): the selection that the args
    ``field``, ``spw``, ``data_column``, ``weight_column``, ``stokes`` and ``interval`` name (as for :func:`image`)."""
    obs = read_observation(_single_input(inputs, ("ms", "vis")), **_selection(args))
    write_zarr(obs, outputs["zarr"], row_chunks=_arg(args, "row_chunks", 65_536, int))


def _geometry(obs: Observation, args: Mapping[str, Any]) -> ImageGeometry:
    """The image grid from step args; a missing value, or 0 (how a workflow parameter says "derive it"), is derived."""
    return image_geometry(obs, npix=_arg(args, "npix", None, int) or None,
                          cell_arcsec=_arg(args, "cell_arcsec", None, float) or None,
                          fov_deg=_arg(args, "fov_deg", None, float) or None, epsilon=_arg(args, "epsilon", 1e-5, float),
                          wgridding=_arg(args, "wgridding", True, bool))


IMAGE_ARGS = ("npix", "cell_arcsec", "fov_deg", "epsilon", "wgridding", "device", "niter", "gain", "threshold",
              "threshold_rel", "mgain", "max_major", "patch_half", "nparts", "chan_groups", "nthreads",
              "min_source_flux", "field", "spw", "data_column", "weight_column", "weighting", "robust",
              "channels_out", "stokes", "interval", "minuv_l", "maxuv_l", "taper_gaussian_arcsec")


def check_image_args(args: Mapping[str, Any]) -> None:
    """Refuse, before anything is read, an image arg that is unknown, of the wrong type or out of range: an
    InputError (exit 2) that names the arg, what it got and what it takes."""
    unknown_args = set(args) - set(IMAGE_ARGS)
    if unknown_args:
        raise InputError(f"unknown image args: {sorted(unknown_args)} (known: {', '.join(IMAGE_ARGS)})")

    def bad(name: str, expected: str) -> ArgError:
        return ArgError(f"image arg {name!r}: got {args.get(name)!r}; expected {expected}")

    if str(args.get("stokes") or "I").strip().upper() not in STOKES:
        raise bad("stokes", f"one of {', '.join(STOKES)}")
    if str(args.get("weighting") or "natural") not in SCHEMES:
        raise bad("weighting", f"one of {', '.join(SCHEMES)}")
    if not -2.0 <= _arg(args, "robust", 0.0, float) <= 2.0:
        raise bad("robust", "a number in [-2, 2]")
    for name in ("minuv_l", "maxuv_l", "taper_gaussian_arcsec", "threshold", "min_source_flux"):
        value = _arg(args, name, 0.0, float) or 0.0
        if not math.isfinite(value) or value < 0:
            raise bad(name, "a number >= 0 (0: none)")
    minuv, maxuv = _arg(args, "minuv_l", 0.0, float) or 0.0, _arg(args, "maxuv_l", 0.0, float) or 0.0
    if maxuv and minuv >= maxuv:
        raise bad("minuv_l", f"a uv distance below maxuv_l ({maxuv:g} wavelengths)")
    for name in ("niter", "channels_out", "max_major", "nparts", "chan_groups", "patch_half"):
        if (_arg(args, name, 0, int) or 0) < 0:
            raise bad(name, "an integer >= 0")
    gain, mgain = _arg(args, "gain", 0.1, float), _arg(args, "mgain", 0.8, float)
    if not 0 < gain <= 1:
        raise bad("gain", "a loop gain in (0, 1]")
    if not 0 < mgain <= 1:
        raise bad("mgain", "a major-cycle gain in (0, 1]")
    try:
        parse_interval(args.get("interval"))
    except InputError as exc:
        raise ArgError(f"image arg 'interval': {exc}") from None


def _selection(args: Mapping[str, Any]) -> dict[str, Any]:
    """read_ms's selection keywords from step args (empty strings mean 'the default')."""
    spw = args.get("spw")
    return {"field": args.get("field") if args.get("field") not in ("", None) else None,
            "spw": spw if spw not in ("", None) else None,
            "data_column": str(args.get("data_column") or "DATA").upper(),
            "weight_column": str(args.get("weight_column") or "auto"),
            "stokes": str(args.get("stokes") or "I").strip().upper(),
            "interval": args.get("interval") if args.get("interval") not in ("", None, []) else None}


def _sig(x: float, digits: int = 7) -> float:
    """Round to significant digits so JSON does not flip with last-bit (thread-order) differences."""
    return float(f"{float(x):.{digits}g}")


def image(inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any], client: Any = None) -> None:
    """Image an MS or zarr store: partition -> grid on Dask -> Cotton-Schwab CLEAN -> FITS/PNG/JSON.

    Outputs (any subset, at least one): ``restored``, ``model``, ``residual``, ``dirty``, ``psf`` (FITS),
    ``cube`` (FITS: dirty images of ``channels_out`` channel groups), ``cube_restored``/``cube_model``/
    ``cube_residual`` (the groups deconvolved one by one, one Dask task each), ``preview`` (PNG of the restored
    image), ``summary`` (JSON).  ``client`` is a distributed.Client; without
    one the imaging runs in this process (one gridder call per image)."""
    unknown = set(outputs) - set(IMAGE_OUTPUTS)
    if not outputs or unknown:
        raise ValueError(f"image outputs must be a non-empty subset of {IMAGE_OUTPUTS} (unknown: {sorted(unknown)})")
    check_image_args(args)
    weighting = str(args.get("weighting") or "natural")
    robust = _arg(args, "robust", 0.0, float)
    device = str(args.get("device", "cpu"))
    if device not in {"cpu", "gpu"}:
        raise ValueError("device must be 'cpu' or 'gpu'")
    if client is None:
        get_backend(device)  # check the GPU before reading anything
    t0 = time.perf_counter()
    obs = read_observation(_single_input(inputs, ("ms", "zarr", "vis")), **_selection(args))
    geom = _geometry(obs, args)
    uv_args = {"minuv_l": _arg(args, "minuv_l", 0.0, float) or 0.0, "maxuv_l": _arg(args, "maxuv_l", 0.0, float) or 0.0,
               "taper_gaussian_arcsec": _arg(args, "taper_gaussian_arcsec", 0.0, float) or 0.0}
    weights = imaging_weights(obs.uvw, obs.freq, obs.imaging_weights(), geom, weighting, robust,
                              minuv_l=uv_args["minuv_l"], maxuv_l=uv_args["maxuv_l"],
                              taper_fwhm=math.radians(uv_args["taper_gaussian_arcsec"] / 3600.0))
    if not np.any(weights > 0):
        raise InputError("every visibility of the selection has zero imaging weight (flags, weights, uv range); "
                         "there is nothing to image")
    _log(f"read {obs.nvis} visibilities in {time.perf_counter() - t0:.2f} s; image {geom.npix}^2, "
         f"cell {math.degrees(geom.cell) * 3600:.3f} arcsec, epsilon {geom.epsilon}, device {device}, "
         f"Stokes {obs.selection.get('stokes', 'I')}, "
         f"weighting {weighting}{f' (robust {robust:g})' if weighting == 'briggs' else ''}")
    chan_groups = _arg(args, "chan_groups", 0, int) or None
    nparts = _arg(args, "nparts", 0, int) or None
    imager = VisibilityImager(obs, geom, client=client, device=device, nthreads=_arg(args, "nthreads", None, int),
                              nparts=nparts, chan_groups=chan_groups, weights=weights)
    try:
        if imager.partitions:
            _log(f"{len(imager.partitions)} partitions: {summarize_partitions(imager.partitions)}")
        t1 = time.perf_counter()
        clean_args = _clean_args(args, geom)
        result = cotton_schwab(imager, **clean_args, log=_log)
        _log(f"CLEAN: {result.iterations} iterations, {result.major_cycles} major cycles "
             f"({result.stop_reason}) in {time.perf_counter() - t1:.2f} s")
    finally:
        imager.close()
    how = {"weighting": weighting, **({"robust": robust} if weighting == "briggs" else {}),
           **{k: v for k, v in uv_args.items() if v}}
    nout = _arg(args, "channels_out", 0, int) or obs.nchan
    info = _image_info(obs, geom, weights, {**how, "device": device}, result)
    cube_summary: dict[str, Any] | None = None
    if any(name in outputs for name in CLEAN_CUBE_OUTPUTS):
        t2 = time.perf_counter()
        freqs, planes = clean_cube(obs, geom, weights, nout, clean_args, client=client, device=device,
                                   nthreads=_arg(args, "nthreads", None, int), log=_log)
        _log(f"cube of {nout} planes deconvolved in {time.perf_counter() - t2:.2f} s")
        beams = [p.beam if p is not None else None for p in planes]
        cube_summary = {"planes": [{"freq_hz": _sig(f, 12), **({"iterations": p.iterations, "major_cycles": p.major_cycles,
                                     "stop_reason": p.stop_reason,
                                     "bmaj_arcsec": _sig(p.beam.in_degrees(geom.cell)[0] * 3600, 6),
                                     "bmin_arcsec": _sig(p.beam.in_degrees(geom.cell)[1] * 3600, 6),
                                     "bpa_deg": _sig(p.beam.bpa_deg, 5),
                                     "residual_peak_jy_per_beam": _sig(np.abs(p.residual).max(), 4)}
                                    if p is not None else {"empty": True})}
                                   for f, p in zip(freqs, planes, strict=True)]}
        history = (*info.history[:-1], f"cube of {nout} channel groups, each deconvolved on its own: Cotton-Schwab "
                   f"niter {clean_args['niter']} per plane; its own fitted restoring beam in the BEAMS table")
        for name, unit in CLEAN_CUBE_OUTPUTS.items():
            if name in outputs:
                kind = name.removeprefix("cube_")
                stack = np.stack([getattr(p, kind) if p is not None else np.full((geom.npix, geom.npix), np.nan)
                                  for p in planes])
                write_cube(outputs[name], stack, geom.cell, obs.phase_centre, unit, freqs, beams=beams,
                           info=dataclasses.replace(info, history=history))
        if "cube" in outputs:  # the dirty planes came with the CLEANs
            stack = np.stack([p.dirty if p is not None else np.full((geom.npix, geom.npix), np.nan) for p in planes])
            write_cube(outputs["cube"], stack, geom.cell, obs.phase_centre, "JY/BEAM", freqs, beams=beams,
                       info=dataclasses.replace(info, history=(*info.history, f"dirty cube, {nout} channel groups")))
    elif "cube" in outputs:
        freqs, planes = dirty_cube(obs, geom, weights, nout, client=client, device=device,
                                   nthreads=_arg(args, "nthreads", None, int), nparts=nparts, log=_log)
        write_cube(outputs["cube"], planes, geom.cell, obs.phase_centre, "JY/BEAM", freqs, beam=result.beam,
                   info=dataclasses.replace(info, history=(*info.history, f"dirty cube, {nout} channel groups")))
    _write_image_products(obs, geom, result, outputs, args, device, len(imager.partitions) or 1,
                          weights, how, cube_summary)


def _clean_args(args: Mapping[str, Any], geom: ImageGeometry) -> dict[str, Any]:
    """cotton_schwab's keywords from step args (the MFS image and every cube plane use the same)."""
    return {"niter": _arg(args, "niter", 1000, int), "gain": _arg(args, "gain", 0.1, float),
            "threshold": _arg(args, "threshold", 0.0, float), "threshold_rel": _arg(args, "threshold_rel", 1e-3, float),
            "mgain": _arg(args, "mgain", 0.8, float), "max_major": _arg(args, "max_major", 10, int),
            "patch_half": _arg(args, "patch_half", geom.npix // 4, int) or None}  # patch_half 0: the whole PSF


def _image_info(obs: Observation, geom: ImageGeometry, weights: np.ndarray, how: Mapping[str, Any],
                result: Any) -> ImageInfo:
    """FITS header facts: frequency (mean of the channels that carry weight), band, telescope, field, start time,
    and how the image was made."""
    chans = np.flatnonzero(np.any(weights > 0, axis=0))
    freqs = obs.freq[chans] if chans.size else obs.freq
    sel = obs.selection
    stokes = str(sel.get("stokes", "I"))
    history = [f"portaflow.cores.radio: {obs.nvis} visibilities, Stokes {stokes}",
               f"selection: field {sel.get('field_id', 0)} ({obs.field_name}), SPW {sel.get('spw', [0])}, "
               f"column {sel.get('data_column', 'DATA')}, weights {'/'.join(sel.get('weight_column', ['stored']))}",
               f"weighting {how['weighting']}" + (f" robust {how['robust']:g}" if "robust" in how else "")
               + "".join(f", {k} {how[k]:g}" for k in ("minuv_l", "maxuv_l", "taper_gaussian_arcsec") if k in how)
               + (f"; time steps {sel['interval'][0]}..{sel['interval'][1] - 1} of {sel.get('time_steps')}"
                  if "interval" in sel else ""),
               f"gridder {'ducc0 wgridder' if how.get('device', 'cpu') == 'cpu' else 'ES w-gridder on CuPy'}, "
               f"w-gridding {geom.do_wgridding}, epsilon {geom.epsilon:g}",
               f"CLEAN Cotton-Schwab {result.iterations} iterations, {result.major_cycles} major cycles"]
    return ImageInfo(freq_hz=float(np.mean(freqs)), bandwidth_hz=float(np.ptp(freqs)) or None,
                     telescope=obs.telescope, object_name=obs.field_name,
                     date_obs=mjd_seconds_to_isot(float(obs.time.min())) if obs.time.size else "",
                     history=tuple(history), stokes=STOKES_CODE[stokes])


def _write_image_products(obs: Observation, geom: ImageGeometry, result: Any, outputs: Mapping[str, str],
                          args: Mapping[str, Any], device: str, nparts: int, weights: np.ndarray,
                          how: Mapping[str, Any], cube_summary: dict[str, Any] | None = None) -> None:
    info = _image_info(obs, geom, weights, {**how, "device": device}, result)
    freq = float(info.freq_hz or np.mean(obs.freq))
    rms = robust_rms(result.residual)
    min_flux = max(_arg(args, "min_source_flux", 0.0, float), 5.0 * rms)
    # Q, U and V are signed: their sources and peak are the largest in absolute value, with their sign
    signed = obs.selection.get("stokes", "I") != "I"
    found = find_sources(result.model, result.beam, min_flux, signed=signed)
    sources = source_table(found, geom.npix, geom.cell, obs.phase_centre)
    images = {"restored": (result.restored, "JY/BEAM"), "model": (result.model, "JY/PIXEL"),
              "residual": (result.residual, "JY/BEAM"), "dirty": (result.dirty, "JY/BEAM"),
              "psf": (result.psf, "")}
    for name, (img, unit) in images.items():
        if name in outputs:
            write_fits(outputs[name], img, geom.cell, obs.phase_centre, unit, beam=result.beam, info=info)
    if "preview" in outputs:
        write_png(outputs["preview"], result.restored, geom.cell, obs.phase_centre,
                  title=f"restored image ({result.iterations} CLEAN iterations)", sources=sources)
    if "summary" in outputs:
        peak_i, peak_j = np.unravel_index(int(np.argmax(np.abs(result.restored) if signed else result.restored)),
                                          result.restored.shape)
        px, py = fits_pixel(peak_i, peak_j, geom.npix)
        bmaj, bmin, bpa = result.beam.in_degrees(geom.cell)
        summary = {
            "image": {"npix": geom.npix, "cell_arcsec": _sig(math.degrees(geom.cell) * 3600),
                      "epsilon": geom.epsilon, "wgridding": geom.do_wgridding, "device": device,
                      "phase_centre_deg": [_sig(math.degrees(x), 12) for x in obs.phase_centre],
                      "freq_mean_hz": _sig(freq, 12), "nvis": obs.nvis, "partitions": nparts, **how,
                      "nvis_weighted": int(np.count_nonzero(weights))},
            "selection": obs.selection,
            "peak_jy_per_beam": _sig(result.restored[peak_i, peak_j]),
            "peak_pixel": {"x": px, "y": py},
            "rms_jy_per_beam": _sig(rms, 4),
            "residual_peak_jy_per_beam": _sig(np.abs(result.residual).max(), 4),
            "beam": {"bmaj_arcsec": _sig(bmaj * 3600, 6), "bmin_arcsec": _sig(bmin * 3600, 6), "bpa_deg": _sig(bpa, 5)},
            "clean": {"iterations": result.iterations, "major_cycles": result.major_cycles,
                      "stop_reason": result.stop_reason},
            "sources": [{k: (_sig(v) if isinstance(v, float) and k == "flux_jy" else v) for k, v in s.items()}
                        for s in sources],
        }
        if cube_summary is not None:
            summary["cube"] = cube_summary
        truth = obs.meta.get("sky")
        if truth:
            summary["truth"] = _match_truth(truth, sources, geom.npix)
        write_json(outputs["summary"], summary)
    for name, path in outputs.items():
        if not os.path.exists(path):
            raise RuntimeError(f"output {name} was not written to {path}")


def _match_truth(truth: Mapping[str, Any], sources: list[dict[str, Any]], npix: int) -> list[dict[str, Any]]:
    """For each simulated source, the nearest found source (pixel distance, flux ratio)."""
    out = []
    for f, i, j in zip(truth["flux"], truth["pix_i"], truth["pix_j"], strict=True):
        x, y = fits_pixel(i, j, npix)
        if sources:
            d = [math.hypot(s["x"] - x, s["y"] - y) for s in sources]
            k = int(np.argmin(d))
            out.append({"true_flux_jy": _sig(f), "x": x, "y": y, "found_flux_jy": sources[k]["flux_jy"],
                        "flux_ratio": _sig(sources[k]["flux_jy"] / f, 6), "offset_pix": _sig(d[k], 4)})
        else:
            out.append({"true_flux_jy": _sig(f), "x": x, "y": y, "found_flux_jy": None})
    return out
