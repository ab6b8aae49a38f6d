"""Workflow entry points (portaflow's step contract): generate -> reduce (Dask) -> fit_and_plot.

Each function takes `inputs`/`outputs` (paths) and `args` (plain YAML values), writes every output
completely or raises. Unknown `args` keys raise, so a typo in a workflow fails loudly instead of being
ignored. The args are documented in docs/cores/hep.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from portaflow.cores.hep import adl
from portaflow.cores.hep.fit import fit_z_peak
from portaflow.cores.hep.generate import Z_MASS, Z_WIDTH, GeneratorConfig, write_events_file
from portaflow.cores.hep.plots import plot_mass, plot_met, plot_stack
from portaflow.cores.hep.processor import ProcessorSpec, Sample, run_processor
from portaflow.cores.hep.products import (
    histograms_document,
    processor_document,
    read_histograms,
    read_processor_document,
    write_json,
    write_processor_root,
    write_root,
)
from portaflow.cores.hep.reduce import DEFAULT_CHUNK, inspect_files, reduce_files
from portaflow.cores.hep.schema import Schema, SchemaError, expand_paths

log = logging.getLogger(__name__)

GENERATE_ARGS = {"events", "seed", "file_index", "signal_fraction", "compression", "background", "pt_resolution",
                 "basket_entries", "gen_weight", "negative_weight_fraction", "sf_weights"}
REDUCE_ARGS = {"chunk_entries", "partition_entries", "device", "tree", "columns", "weight", "files"}
FIT_ARGS = {"fit_range"}
PROCESS_ARGS = {"samples", "luminosity", "processor", "processor_args", "branches", "tree", "chunk_entries",
                "partition_entries"}
PLOT_ARGS = {"histograms", "log_y"}
ADL_PROCESSOR = "portaflow.cores.hep.adl:process"
MET_HISTOGRAMS = ("met_all", "met_2jets40", "met_zmumu")


def _check_args(args: Mapping[str, Any], allowed: set[str], step: str) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ValueError(f"hep.{step}: unknown args {unknown}; allowed: {sorted(allowed)}")


def _flag(value: Any) -> bool:
    """A YAML boolean, also accepting the strings a command line would give."""
    if isinstance(value, str):
        if value.lower() in ("true", "yes", "on", "1"):
            return True
        if value.lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def _paths(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def generate(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any]) -> None:
    """Write one synthetic NanoAOD-like ROOT file to outputs["events"] (and its truth to outputs["truth"] if asked)."""
    _check_args(args, GENERATE_ARGS, "generate")
    config = GeneratorConfig(
        events=int(args.get("events", 200_000)), seed=int(args.get("seed", 1)),
        file_index=int(args.get("file_index", 0)), signal_fraction=float(args.get("signal_fraction", 0.15)),
        background=_flag(args.get("background", True)), pt_resolution=float(args.get("pt_resolution", 0.01)),
        gen_weight=_flag(args.get("gen_weight", False)),
        negative_weight_fraction=float(args.get("negative_weight_fraction", 0.13)),
        sf_weights=_flag(args.get("sf_weights", False)),
    )
    if config.events < 0 or not 0.0 <= config.signal_fraction <= 1.0:
        raise ValueError(f"hep.generate: need events >= 0 and 0 <= signal_fraction <= 1, got {config}")
    truth = write_events_file(outputs["events"], config, compression=str(args.get("compression", "zlib:1")),
                              basket_entries=int(args.get("basket_entries", 100_000)))
    if "truth" in outputs:
        Path(outputs["truth"]).write_text(json.dumps(json.loads(truth.to_json()), indent=1, sort_keys=True) + "\n")


def reduce(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any], client: Any) -> None:
    """Reduce inputs["events"] (paths, file lists or globs; plus args["files"], for datasets the workflow does
    not track, e.g. root:// URLs) over the Dask client to outputs["histograms"] (ROOT) and
    outputs["histograms_json"] (JSON with edges, counts, variances, selected counts and summed truth).
    args `tree`, `columns`, `weight` declare the input layout (schema.Schema.from_args)."""
    _check_args(args, REDUCE_ARGS, "reduce")
    given = [*(_paths(inputs["events"]) if "events" in inputs else []), *(_paths(args["files"]) if "files" in args else [])]
    paths = expand_paths(given)
    schema = Schema.from_args(args.get("tree"), args.get("columns"), args.get("weight"))
    partition = args.get("partition_entries")
    result = reduce_files(paths, schema=schema, chunk_entries=int(args.get("chunk_entries", DEFAULT_CHUNK)),
                          partition_entries=int(partition) if partition is not None else None,
                          device=str(args.get("device", "cpu")), client=client)
    write_root(outputs["histograms"], result.counts, result.truth)
    extra: dict[str, Any] = {"truth": result.truth, "files": [Path(p).name for p in paths]}
    if result.skipped:
        extra["skipped"] = result.skipped
    if result.weight:
        extra["weight"] = result.weight
    document = histograms_document(result.counts, extra)
    write_json(outputs["histograms_json"], document)


def fit_and_plot(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any]) -> None:
    """Fit the Z peak of inputs["histograms"] (the JSON product, or the ROOT one) and write outputs["fit"],
    outputs["summary"] (JSON), outputs["mass_plot"] and, if asked, outputs["met_plot"] (PNG)."""
    _check_args(args, FIT_ARGS, "fit_and_plot")
    doc = read_histograms(inputs["histograms"])
    hists = doc["histograms"]
    fit_range = tuple(float(x) for x in args.get("fit_range", (70.0, 110.0)))
    if "dimuon_mass_fine" not in hists:
        raise ValueError(f"{inputs['histograms']}: no dimuon histograms to fit; the reduction skipped them: "
                         f"{doc.get('skipped', {}).get('dimuon', 'not produced')}")
    fine = hists["dimuon_mass_fine"]
    weighted = "values" in fine  # a weighted product: fit sum w with sum w^2 (scaled Poisson likelihood)
    try:
        fit, model = fit_z_peak(fine["edges"], fine["values"] if weighted else fine["counts"], fit_range,
                                fine["variances"] if weighted else None)
        fit_doc: dict[str, Any] = {"status": "ok", **fit.as_dict()}
    except ValueError as exc:  # too few entries: report it, still plot the data
        fit, model, fit_doc = None, None, {"status": f"not fitted: {exc}", "valid": False}
    # Only the generator's own files have a generated mass; on real data the PDG values are a reference, no pull.
    generated = bool(doc.get("truth"))
    fit_doc["generated" if generated else "reference_pdg"] = {"mass": Z_MASS, "width": Z_WIDTH}
    if weighted:
        fit_doc["weighted"] = doc.get("weight", True)
    fit_doc["model"] = ("extended binned Poisson likelihood: n_signal * Voigt(mass, width=FWHM of the Breit-Wigner, sigma)"
                        " + n_background * exp(slope * m)" + ("; weighted: scaled Poisson (sum w, sum w^2)" if weighted else ""))
    write_json(outputs["fit"], fit_doc)

    plot_mass(outputs["mass_plot"], hists["dimuon_mass"], fine, fit, model)
    if "met_plot" in outputs:
        names = tuple(name for name in MET_HISTOGRAMS if name in hists)
        if not names:
            raise ValueError(f"{inputs['histograms']}: no MET histograms to plot; the reduction skipped them: "
                             f"{doc.get('skipped', {}).get('met_all', 'not produced')}")
        plot_met(outputs["met_plot"], hists, names)

    spectrum = hists["dimuon_mass"]
    peak = int(np.argmax(spectrum["counts"])) if sum(spectrum["counts"]) else None
    summary = {
        "counts": doc.get("counts", {}),
        "truth": doc.get("truth", {}),
        "files": doc.get("files", []),
        "dimuon_peak_bin": None if peak is None else [spectrum["edges"][peak], spectrum["edges"][peak + 1]],
        "fit": {"status": fit_doc["status"], "valid": fit_doc.get("valid", False)},
    }
    if fit is not None:
        for name in ("mass", "width", "sigma", "n_signal", "n_background"):
            summary["fit"][name] = {"value": fit.values[name], "error": fit.errors[name]}
        if generated:
            summary["fit"]["mass_pull"] = (fit.values["mass"] - Z_MASS) / fit.errors["mass"]
        summary["fit"]["chi2_ndof"] = [fit.chi2, fit.ndof]
    write_json(outputs["summary"], summary)


def process(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any], client: Any) -> None:
    """Run a processor (default: the ADL queries, portaflow.cores.hep.adl:process) over several samples on the
    Dask client; normalise simulation to `luminosity`; write outputs["histograms_json"] (every histogram with its
    dataset and systematic axes, and per sample its events, sum of weights, negative-weight events and scale,
    and for simulation the normalisation's sum of weights and its source: the `sumw` given, the files' NanoAOD
    Runs/genEventSumw, or the events' own sum) and, if asked, outputs["histograms"] (ROOT: one TH1D per histogram, dataset and systematic).

    args: `samples` {name: {files, kind: data|mc, xsec [pb], weight, sumw}} (a sample without `files` takes
    inputs[name]), `luminosity` [pb^-1], `processor` ('module:function'), `processor_args` (its args),
    `branches` (what a user processor reads; default every branch), `tree`, `chunk_entries`, `partition_entries`.
    """
    _check_args(args, PROCESS_ARGS, "process")
    given = args.get("samples")
    if not isinstance(given, Mapping) or not given:
        raise SchemaError("hep.process: args.samples: a mapping of sample name -> {files, kind, xsec, ...} is required")
    samples = []
    for name, value in given.items():
        value = dict(value or {})
        if "files" not in value and name in inputs:
            value["files"] = _paths(inputs[name])
        samples.append(Sample.from_args(str(name), value))
    tree = str(args.get("tree", "Events"))
    function = str(args.get("processor", ADL_PROCESSOR))
    processor_args = dict(args.get("processor_args") or {})
    skipped: dict[str, str] = {}
    if function == ADL_PROCESSOR:
        if "branches" in args:
            raise SchemaError("hep.process: the ADL processor chooses its branches; give `branches` only with your own processor")
        infos = inspect_files([p for s in samples for p in s.files], tree)
        spec, skipped = adl.processor_spec({i.path: i.branches for i in infos}, processor_args, tree)
        if skipped:
            log.warning("ADL queries skipped for missing branches: %s",
                        " | ".join(f"{q}: {why}" for q, why in skipped.items()))
    else:
        branches = args.get("branches")
        spec = ProcessorSpec(function, None if branches is None else tuple(_paths(branches)), processor_args, tree)
    partition = args.get("partition_entries")
    luminosity = args.get("luminosity")
    run = run_processor(samples, spec, luminosity=None if luminosity is None else float(luminosity),
                        chunk_entries=int(args.get("chunk_entries", DEFAULT_CHUNK)),
                        partition_entries=int(partition) if partition is not None else None, client=client)
    summary = run.summary()
    for sample in samples:
        summary[sample.name].update(kind="data" if sample.is_data else "mc", xsec=sample.xsec,
                                    files=[Path(p).name for p in sample.files])
    extra: dict[str, Any] = {"luminosity": run.luminosity, "samples": summary, "processor": function}
    if skipped:
        extra["skipped"] = skipped
    write_json(outputs["histograms_json"], processor_document(run.histograms, extra))
    if "histograms" in outputs:
        write_processor_root(outputs["histograms"], run.histograms)


def plot_samples(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any]) -> None:
    """Stacked data/simulation plots from `process` products (inputs["histograms"]: one JSON or a list of them,
    over the same samples): one PNG per output, each named after the histogram it shows unless args["histograms"]
    maps output name -> histogram."""
    _check_args(args, PLOT_ARGS, "plot_samples")
    paths = _paths(inputs["histograms"])
    doc = read_processor_document(paths[0])
    for path in paths[1:]:
        other = read_processor_document(path)
        if {k: v.get("kind") for k, v in other.get("samples", {}).items()} != \
                {k: v.get("kind") for k, v in doc.get("samples", {}).items()}:
            raise ValueError(f"{path}: its samples differ from {paths[0]}'s; plot them separately")
        clash = sorted(set(other["histograms"]) & set(doc["histograms"]))
        if clash:
            raise ValueError(f"{path}: histograms {clash} are also in {paths[0]}")
        doc["histograms"].update(other["histograms"])
    chosen = dict(args.get("histograms") or {name: name for name in outputs})
    for output, name in chosen.items():
        if output not in outputs:
            raise ValueError(f"hep.plot_samples: args.histograms names output {output!r}, which the step does not declare")
        if name not in doc["histograms"]:
            raise ValueError(f"{', '.join(paths)}: no histogram {name!r}; there are {sorted(doc['histograms'])}"
                             + (f"; skipped: {doc['skipped']}" if doc.get("skipped") else ""))
        plot_stack(outputs[output], doc, name, log_y=_flag(args.get("log_y", False)))
