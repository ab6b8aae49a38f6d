"""Histogram products: hist objects, ROOT (TH1D via uproot) and JSON files, and reading them back.

Why both formats: ROOT is what HEP tools open; JSON (edges, counts, variances, flow bins) is what the
fit step, tests and non-HEP tools read without uproot. Counts are integers; variances of unweighted counts
equal the counts. The JSON is written with sorted keys and no timestamps, so it is byte-deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hist
import numpy as np
import uproot

from portaflow.cores.hep.selections import COUNT_NAMES, HIST_BY_NAME, HISTOGRAMS, SUMW, SUMW2, HistSpec

FORMAT = "portaflow.hep.histograms/1"


def to_hist(spec: HistSpec, counts_with_flow: np.ndarray) -> hist.Hist:
    """An Int64-storage hist with the given counts (underflow and overflow included)."""
    h = hist.Hist(hist.axis.Regular(spec.bins, spec.lo, spec.hi, name="x", label=spec.label),
                  storage=hist.storage.Int64(), name=spec.name, label=spec.title)
    h.view(flow=True)[...] = counts_with_flow
    return h


def _present(counts: Mapping[str, np.ndarray]) -> list[HistSpec]:
    """The histograms a reduction produced (queries whose branches were missing produce none)."""
    return [spec for spec in HISTOGRAMS if spec.name in counts]


def is_weighted(counts: Mapping[str, np.ndarray]) -> bool:
    return any(name.endswith(SUMW) for name in counts)


def histograms(counts: Mapping[str, np.ndarray]) -> dict[str, hist.Hist]:
    """hist objects: Int64 storage (entries) when unweighted, Weight storage (sum w, sum w^2) when weighted."""
    out = {}
    for spec in _present(counts):
        if spec.name + SUMW in counts:
            out[spec.name] = _weighted(spec, np.asarray(counts[spec.name + SUMW]), np.asarray(counts[spec.name + SUMW2]))
        else:
            out[spec.name] = to_hist(spec, counts[spec.name])
    return out


def _weighted(spec: HistSpec, values_with_flow: np.ndarray, variances_with_flow: np.ndarray | None = None) -> hist.Hist:
    """Weight storage (sum w, sum w^2) so uproot writes a TH1D with its Sumw2 filled; unweighted counts are
    their own variances."""
    h = hist.Hist(hist.axis.Regular(spec.bins, spec.lo, spec.hi, name="x", label=spec.label),
                  storage=hist.storage.Weight(), name=spec.name, label=spec.title)
    view = h.view(flow=True)
    view["value"] = values_with_flow.astype(np.float64)
    view["variance"] = (values_with_flow if variances_with_flow is None else variances_with_flow).astype(np.float64)
    return h


TRUTH_KEY = "portaflow_truth"


def write_root(path: str | Path, counts: Mapping[str, np.ndarray], truth: Mapping[str, Any] | None = None) -> None:
    """One TH1D per histogram, named as in selections.HISTOGRAMS (counts exact up to 2**53); weighted: the
    sums of weights with their sums of squared weights as Sumw2. A generator truth (summed over the inputs) goes
    along as a TObjString, so a fit from the ROOT product knows, as from the JSON, that the events were generated."""
    with uproot.recreate(path) as file:
        if truth:
            file[TRUTH_KEY] = json.dumps(dict(truth), sort_keys=True)
        for name, h in histograms(counts).items():
            file[name] = h if h.storage_type is hist.storage.Weight else _weighted(HIST_BY_NAME[name], np.asarray(counts[name]))


def histograms_document(counts: Mapping[str, np.ndarray], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document: every histogram with edges, in-range counts, variances and flow bins, plus counts.

    Weighted: `counts`/`underflow`/`overflow` stay the numbers of entries; `values` are the sums of weights,
    `variances` the sums of squared weights, `flow_values`/`flow_variances` the same for [underflow,
    overflow]; `weighted_counts` gives each selected count's [sum w, sum w^2].
    """
    doc: dict[str, Any] = {"format": FORMAT, "histograms": {}, "counts": {}}
    for spec in _present(counts):
        values = [int(v) for v in np.asarray(counts[spec.name])]
        entry: dict[str, Any] = {
            "title": spec.title, "label": spec.label, "edges": spec.edges().tolist(),
            "counts": values[1:-1], "variances": [float(v) for v in values[1:-1]],
            "underflow": values[0], "overflow": values[-1],
        }
        if spec.name + SUMW in counts:
            sumw = [float(v) for v in np.asarray(counts[spec.name + SUMW])]
            sumw2 = [float(v) for v in np.asarray(counts[spec.name + SUMW2])]
            entry.update({"values": sumw[1:-1], "variances": sumw2[1:-1], "flow_values": [sumw[0], sumw[-1]],
                          "flow_variances": [sumw2[0], sumw2[-1]]})
        doc["histograms"][spec.name] = entry
    doc["counts"] = {name: int(np.asarray(counts[name])[0]) for name in COUNT_NAMES if name in counts}
    if is_weighted(counts):
        doc["weighted_counts"] = {name: [float(np.asarray(counts[name + SUMW])[0]), float(np.asarray(counts[name + SUMW2])[0])]
                                  for name in COUNT_NAMES if name + SUMW in counts}
    doc.update(extra or {})
    return doc


def write_json(path: str | Path, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_histograms(path: str | Path) -> dict[str, Any]:
    """Histograms from either product: {'histograms': {name: {edges, counts, variances, ...}}, 'counts': ...}.

    From ROOT only the histograms and the generator truth come back (the selected counts live in the JSON product).
    """
    path = Path(path)
    if path.suffix == ".json":
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: not a portaflow HEP histogram file (format {doc.get('format')!r})")
        return doc
    out: dict[str, Any] = {"format": FORMAT, "histograms": {}, "counts": {}}
    with uproot.open(path) as file:
        if TRUTH_KEY in file.keys(cycle=False):
            out["truth"] = json.loads(str(file[TRUTH_KEY]))
        for name in file.keys(cycle=False):
            h = file[name]
            if not h.classname.startswith("TH1"):
                continue
            values, variances = h.values(flow=True), h.variances(flow=True)
            spec = HIST_BY_NAME.get(name)
            out["histograms"][name] = {
                "title": spec.title if spec else str(h.title), "label": spec.label if spec else "",
                "edges": h.axis().edges().tolist(), "counts": [int(round(v)) for v in values[1:-1]],
                "variances": [float(v) for v in variances[1:-1]],
                "underflow": int(round(values[0])), "overflow": int(round(values[-1])),
            }
    return out


# ---- processor products (histograms with dataset and systematic category axes) -----------------------------------

PROCESSOR_FORMAT = "portaflow.hep.processor/1"


def _axis_document(axis: Any) -> dict[str, Any]:
    if isinstance(axis, hist.axis.StrCategory):
        return {"name": axis.name, "categories": list(axis)}
    return {"name": axis.name, "label": axis.label, "edges": axis.edges.tolist()}


def hist_document(h: hist.Hist) -> dict[str, Any]:
    """Axes, in-range values (sum w) and variances (sum w^2) as nested lists, flow bins left out."""
    view = h.view(flow=False)
    return {"axes": [_axis_document(a) for a in h.axes], "label": h.label or "",
            "values": np.asarray(view["value"]).tolist(), "variances": np.asarray(view["variance"]).tolist()}


def processor_document(histograms: Mapping[str, hist.Hist], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON product of a processor run: every histogram (hist_document), plus `extra` (samples, luminosity...)."""
    return {"format": PROCESSOR_FORMAT, "histograms": {name: hist_document(h) for name, h in histograms.items()},
            **(extra or {})}


def read_processor_document(path: str | Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != PROCESSOR_FORMAT:
        raise ValueError(f"{path}: not a portaflow HEP processor product (format {doc.get('format')!r})")
    return doc


def write_processor_root(path: str | Path, histograms: Mapping[str, hist.Hist]) -> list[str]:
    """One TH1D per category combination of every histogram with a single non-category axis, named
    `name__dataset__systematic` (the convention of combine-style fit tools); returns the names written."""
    written = []
    with uproot.recreate(path) as file:
        for name, h in histograms.items():
            categories = [a for a in h.axes if isinstance(a, hist.axis.StrCategory)]
            if len(h.axes) - len(categories) != 1:
                continue
            for combination in np.ndindex(*(len(a) for a in categories)):
                index = {a.name: a[k] for a, k in zip(categories, combination, strict=True)}
                key = "__".join([name, *index.values()])
                file[key] = h[index]
                written.append(key)
    return written
