"""The columnar reduction against a plain-Python event loop written here, sharing no code with the library.

The reference reads the same files with uproot into Python lists, loops over events with plain floats and
`math`, builds each pair mass itself (E from |p| = pt cosh(eta)), and bins with `bisect` on edges it
builds itself. Every bin (flow bins included) and every selected count must be equal.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
import uproot

from portaflow.cores.hep.products import histograms
from portaflow.cores.hep.reduce import reduce_files

# The binning, as the documentation states it (name -> (bins, lo, hi)).
BINNING = {
    "dimuon_mass": (150, 0.0, 150.0),
    "dimuon_mass_fine": (160, 70.0, 110.0),
    "met_all": (100, 0.0, 200.0),
    "met_2jets40": (100, 0.0, 200.0),
    "met_zmumu": (100, 0.0, 200.0),
}


class LoopHistogram:
    """[underflow, bins..., overflow] with half-open bins [edge_k, edge_k+1)."""

    def __init__(self, bins: int, lo: float, hi: float) -> None:
        self.edges = [lo + k * (hi - lo) / bins for k in range(bins + 1)]
        self.counts = [0] * (bins + 2)

    def fill(self, x: float) -> None:
        if x != x or x >= self.edges[-1]:
            self.counts[-1] += 1
        elif x < self.edges[0]:
            self.counts[0] += 1
        else:
            self.counts[bisect.bisect_right(self.edges, x)] += 1


def four_vector(pt: float, eta: float, phi: float, mass: float) -> tuple[float, float, float, float]:
    p = pt * math.cosh(eta)
    return math.sqrt(p * p + mass * mass), pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)


def event_loop(paths: list[str]) -> tuple[dict[str, list[int]], dict[str, int]]:
    hists = {name: LoopHistogram(*spec) for name, spec in BINNING.items()}
    counts = {"events": 0, "os_pairs": 0, "os_pairs_in_window": 0, "events_2jets40": 0, "events_zmumu": 0}
    for path in paths:
        with uproot.open(path) as file:
            events = file["Events"].arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge",
                                             "Jet_pt", "MET_pt"], library="ak").tolist()
        for event in events:
            counts["events"] += 1
            met = float(event["MET_pt"])
            hists["met_all"].fill(met)
            muons = list(zip(event["Muon_pt"], event["Muon_eta"], event["Muon_phi"], event["Muon_mass"], event["Muon_charge"], strict=True))
            has_z = False
            for i in range(len(muons)):
                for j in range(i + 1, len(muons)):
                    if muons[i][4] == muons[j][4]:
                        continue
                    e1, x1, y1, z1 = four_vector(*muons[i][:4])
                    e2, x2, y2, z2 = four_vector(*muons[j][:4])
                    m2 = (e1 + e2) ** 2 - (x1 + x2) ** 2 - (y1 + y2) ** 2 - (z1 + z2) ** 2
                    mass = math.sqrt(max(m2, 0.0))
                    counts["os_pairs"] += 1
                    hists["dimuon_mass"].fill(mass)
                    hists["dimuon_mass_fine"].fill(mass)
                    if 60.0 < mass < 120.0:
                        counts["os_pairs_in_window"] += 1
                        has_z = True
            if sum(1 for pt in event["Jet_pt"] if pt > 40.0) >= 2:
                counts["events_2jets40"] += 1
                hists["met_2jets40"].fill(met)
            if has_z:
                counts["events_zmumu"] += 1
                hists["met_zmumu"].fill(met)
    return {name: h.counts for name, h in hists.items()}, counts


@pytest.fixture(scope="module")
def reference(mixed_dataset):
    paths, _ = mixed_dataset
    return event_loop(paths)


@pytest.mark.parametrize("chunk_entries", [100_000, 1000, 333])
def test_every_bin_and_count_equals_the_event_loop(mixed_dataset, reference, chunk_entries):
    paths, _ = mixed_dataset
    loop_hists, loop_counts = reference
    result = reduce_files(paths, chunk_entries=chunk_entries)
    assert loop_counts["events"] == 3000 + 2500 + 1700
    assert loop_counts["events_zmumu"] > 100 and loop_counts["events_2jets40"] > 100  # a real selection
    assert result.selected() == loop_counts
    for name, expected in loop_hists.items():
        assert result.counts[name].tolist() == expected, name


def test_dask_two_workers_equals_one_process(mixed_dataset, reference, dask_client):
    paths, _ = mixed_dataset
    single = reduce_files(paths, chunk_entries=800)
    distributed = reduce_files(paths, chunk_entries=800, partition_entries=800, client=dask_client)
    assert distributed.work_items >= 10  # really split over several tasks
    assert sorted(single.counts) == sorted(distributed.counts)
    for name in single.counts:
        assert np.array_equal(single.counts[name], distributed.counts[name]), name
    assert distributed.selected() == reference[1]


def test_hist_objects_hold_the_counts(mixed_dataset, reference):
    paths, _ = mixed_dataset
    hists = histograms(reduce_files(paths).counts)
    loop_hists, _ = reference
    for name, (bins, lo, hi) in BINNING.items():
        h = hists[name]
        assert h.axes[0].size == bins and h.axes[0].edges[0] == lo and h.axes[0].edges[-1] == hi
        assert h.values(flow=True).astype(int).tolist() == loop_hists[name]


def test_whole_chunk_select_equals_the_grouped_reader(mixed_dataset, reference):
    """`select` on one FlatChunk (what a GPU gets) and the column-group reader give the same result."""
    from portaflow.cores.hep.reduce import read_chunk
    from portaflow.cores.hep.selections import select

    totals: dict[str, np.ndarray] = {}
    for path in mixed_dataset[0]:
        with uproot.open(path) as file:
            tree = file["Events"]
            part = select(read_chunk(tree, 0, tree.num_entries))
        for name, values in part.items():
            totals[name] = totals.get(name, 0) + values
    loop_hists, loop_counts = reference
    for name, expected in loop_hists.items():
        assert totals[name].tolist() == expected, name
    assert {name: int(totals[name][0]) for name in loop_counts} == loop_counts
