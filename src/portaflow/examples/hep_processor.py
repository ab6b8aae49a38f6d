"""An example of a user's HEP processor (workflows/hep/samples.yaml runs it): the leading muon's pT and the
number of muons, per chunk of events, as hist objects with Weight storage.

Write your own the same way, in your own module: `function(events, context) -> {name: hist.Hist}`. `events` is
one chunk of one file as an awkward array with the branches the step's `branches` arg lists; `context.weight`
holds the per-event weights (generator weights for simulation, 1 for data), `context.sample`/`context.is_data`
name the sample, `context.args` is the step's `processor_args`. portaflow runs it on every chunk, adds the
histograms, normalises simulation and adds the `dataset` axis; the function must not keep state between calls.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import hist
import numpy as np


def leading_muon_pt(events: ak.Array, context: Any) -> dict[str, hist.Hist]:
    bins, hi = int(context.args.get("bins", 50)), float(context.args.get("hi", 100.0))
    leading = hist.Hist(hist.axis.Regular(bins, 0.0, hi, name="x", label=r"leading muon $p_T$ [GeV]"),
                        storage=hist.storage.Weight())
    multiplicity = hist.Hist(hist.axis.Regular(8, 0.0, 8.0, name="x", label="muons per event"),
                             storage=hist.storage.Weight())
    counts = ak.to_numpy(ak.num(events.Muon_pt))
    has_muon = counts > 0
    leading.fill(x=ak.to_numpy(ak.max(events.Muon_pt[has_muon], axis=1)), weight=context.weight[has_muon])
    multiplicity.fill(x=counts.astype(np.float64), weight=context.weight)
    return {"leading_muon_pt": leading, "muon_multiplicity": multiplicity}
