"""A user's processor, as a physicist would write one (the test for the processor interface imports it by name).

The contract: `function(events, context) -> {name: hist.Hist}` with Weight storage; `events` is one chunk of one
file (awkward), `context.weight` the per-event weights, `context.args` the workflow's `processor_args`.
"""

from __future__ import annotations

import awkward as ak
import hist


def leading_muon_pt(events: ak.Array, context) -> dict[str, hist.Hist]:
    h = hist.Hist(hist.axis.Regular(int(context.args["bins"]), 0.0, float(context.args["hi"]), name="x",
                                    label="leading muon $p_T$ [GeV]"), storage=hist.storage.Weight())
    has_muon = ak.num(events.Muon_pt) > 0
    lead = ak.max(events.Muon_pt[has_muon], axis=1)
    h.fill(x=ak.to_numpy(lead), weight=context.weight[ak.to_numpy(has_muon)])
    return {"leading_muon_pt": h}
