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

from portaflow.cores.hep.selections import COUNT_NAMES, HIST_BY_NAME, HISTOGRAMS, HistSpec

FORMAT = "portaflow.hep.histograms/1"


def to_hist(spec: HistSpec, counts_with_flow: np.ndarray) -> hist.Hist:
    """An Int64-storage hist with the given counts (underflow and overflow included)."""
    h = hist.Hist(hist.axis.Regular(spec.bins, spec.lo, spec.hi, name="x", label=spec.label),
                  storage=hist.storage.Int64(), name=spec.name, label=spec.title)
    h.view(flow=True)[...] = counts_with_flow
    return h


def histograms(counts: Mapping[str, np.ndarray]) -> dict[str, hist.Hist]:
    return {spec.name: to_hist(spec, counts[spec.name]) for spec in HISTOGRAMS}


def _weighted(spec: HistSpec, counts_with_flow: np.ndarray) -> hist.Hist:
    """Weight storage (sum w, sum w^2) so uproot writes a TH1D with its Sumw2 filled."""
    h = hist.Hist(hist.axis.Regular(spec.bins, spec.lo, spec.hi, name="x", label=spec.label),
                  storage=hist.storage.Weight(), name=spec.name, label=spec.title)
    view = h.view(flow=True)
    view["value"] = counts_with_flow.astype(np.float64)
    view["variance"] = counts_with_flow.astype(np.float64)
    return h


def write_root(path: str | Path, counts: Mapping[str, np.ndarray]) -> None:
    """One TH1D per histogram, named as in selections.HISTOGRAMS (counts exact up to 2**53)."""
    with uproot.recreate(path) as file:
        for spec in HISTOGRAMS:
            file[spec.name] = _weighted(spec, np.asarray(counts[spec.name]))


def histograms_document(counts: Mapping[str, np.ndarray], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document: every histogram with edges, in-range counts, variances and flow bins, plus counts."""
    doc: dict[str, Any] = {"format": FORMAT, "histograms": {}, "counts": {}}
    for spec in HISTOGRAMS:
        values = [int(v) for v in np.asarray(counts[spec.name])]
        doc["histograms"][spec.name] = {
            "title": spec.title, "label": spec.label, "edges": spec.edges().tolist(),
            "counts": values[1:-1], "variances": [float(v) for v in values[1:-1]],
            "underflow": values[0], "overflow": values[-1],
        }
    doc["counts"] = {name: int(np.asarray(counts[name])[0]) for name in COUNT_NAMES}
    doc.update(extra or {})
    return doc


def write_json(path: str | Path, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_histograms(path: str | Path) -> dict[str, Any]:
    """Histograms from either product: {'histograms': {name: {edges, counts, variances, ...}}, 'counts': ...}.

    From ROOT only the histograms come back (the selected counts live in the JSON product).
    """
    path = Path(path)
    if path.suffix == ".json":
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: not a portaflow HEP histogram file (format {doc.get('format')!r})")
        return doc
    out: dict[str, Any] = {"format": FORMAT, "histograms": {}, "counts": {}}
    with uproot.open(path) as file:
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
