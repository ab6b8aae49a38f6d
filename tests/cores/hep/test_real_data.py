"""Real CMS open-data files (from the scikit-hep-testdata 0.3.12 wheel on PyPI) and signed generator weights,
against independent event loops written here.

Files used (all inside the wheel; fetched at set-up by tests/testdata.py, sha256-pinned):
- uproot-HZZ.root: the CMS HEP tutorial's ntuple (2012 open data, simulated H->ZZ): tree `events`, muons and
  jets as four-vectors `Muon_Px/Py/Pz/E`, `Jet_Px/Py`, MET as `MET_px/py`, an `EventWeight` per event.
- uproot-Zmumu.root: 2010 CMS Z->mumu dimuon events: tree `events`, one scalar branch per muon (`px1`, `px2`,
  `E1`, `E2`, `Q1`, `Q2`, ...), no jets, no MET: a muon-only file.
- uproot-small-dy-withoffsets.root: a NanoAOD Drell-Yan skim: tree `tree`, `Muon_pt`/`Muon_charge`, `Jet_pt`,
  `MET_pt`, but no `Muon_eta/phi/mass`: the dimuon queries cannot run, the MET ones can.

The loops read with uproot into Python lists and compute everything with `math` in plain floats, binning
with `bisect` on edges built here; the weighted loop sums w and w^2 per bin in event order.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from pathlib import Path

import pytest
import uproot

from portaflow.cores.hep import steps
from portaflow.cores.hep.generate import GeneratorConfig, write_events_file
from portaflow.cores.hep.products import histograms
from portaflow.cores.hep.reduce import reduce_files
from portaflow.cores.hep.schema import Schema, SchemaError

from testdata import Wheel, wheel_data

WHEEL = Wheel("scikit-hep-testdata", "0.3.12", "scikit_hep_testdata-0.3.12-py2.py3-none-any.whl",
              "7abaef737a5111d955c551469dce8075ad74014ed8d535d184f1f2cf4864b51a")
DATA = "skhep_testdata/data/"

BINNING = {
    "dimuon_mass": (150, 0.0, 150.0),
    "dimuon_mass_fine": (160, 70.0, 110.0),
    "met_all": (100, 0.0, 200.0),
    "met_2jets40": (100, 0.0, 200.0),
    "met_zmumu": (100, 0.0, 200.0),
}
HZZ_COLUMNS = {
    "muon": {"px": "Muon_Px", "py": "Muon_Py", "pz": "Muon_Pz", "energy": "Muon_E", "charge": "Muon_Charge"},
    "jet": {"px": "Jet_Px", "py": "Jet_Py"},
    "met": {"px": "MET_px", "py": "MET_py"},
}
ZMUMU_COLUMNS = {"muon": {"px": ["px1", "px2"], "py": ["py1", "py2"], "pz": ["pz1", "pz2"], "energy": ["E1", "E2"],
                          "charge": ["Q1", "Q2"]}}


class LoopHistogram:
    """[underflow, bins..., overflow] with half-open bins; entries, sum of weights and of squared weights."""

    def __init__(self, bins: int, lo: float, hi: float) -> None:
        self.edges = [lo + k * (hi - lo) / bins for k in range(bins + 1)]
        self.counts = [0] * (bins + 2)
        self.sumw = [0.0] * (bins + 2)
        self.sumw2 = [0.0] * (bins + 2)

    def fill(self, x: float, w: float = 1.0) -> None:
        if x != x or x >= self.edges[-1]:
            k = len(self.counts) - 1
        elif x < self.edges[0]:
            k = 0
        else:
            k = bisect.bisect_right(self.edges, x)
        self.counts[k] += 1
        self.sumw[k] += w
        self.sumw2[k] += w * w


def event_loop(events: list[dict], has_muons: bool, has_met: bool, has_jets: bool) -> tuple[dict, dict, dict]:
    """events: per event {'muons': [(E, px, py, pz, q)], 'jets': [pt], 'met': float, 'w': float}.
    Returns (histograms, counts, weighted counts as [sum w, sum w^2]) of the queries that can run."""
    hists = {}
    if has_muons:
        hists |= {n: LoopHistogram(*BINNING[n]) for n in ("dimuon_mass", "dimuon_mass_fine")}
    if has_met:
        hists["met_all"] = LoopHistogram(*BINNING["met_all"])
        if has_jets:
            hists["met_2jets40"] = LoopHistogram(*BINNING["met_2jets40"])
        if has_muons:
            hists["met_zmumu"] = LoopHistogram(*BINNING["met_zmumu"])
    names = ["events"] + (["os_pairs", "os_pairs_in_window", "events_zmumu"] if has_muons else []) + \
        (["events_2jets40"] if has_met and has_jets else [])
    counts = {n: 0 for n in names}
    weighted = {n: [0.0, 0.0] for n in names}

    def add(name: str, w: float) -> None:
        counts[name] += 1
        weighted[name][0] += w
        weighted[name][1] += w * w

    for event in events:
        w = event["w"]
        add("events", w)
        if has_met:
            hists["met_all"].fill(event["met"], w)
        has_z = False
        muons = event["muons"] if has_muons else []
        for i in range(len(muons)):
            for j in range(i + 1, len(muons)):
                if muons[i][4] * muons[j][4] >= 0:
                    continue
                e, x, y, z = (muons[i][k] + muons[j][k] for k in range(4))
                mass = math.sqrt(max(e * e - (x * x + y * y + z * z), 0.0))
                add("os_pairs", w)
                hists["dimuon_mass"].fill(mass, w)
                hists["dimuon_mass_fine"].fill(mass, w)
                if 60.0 < mass < 120.0:
                    add("os_pairs_in_window", w)
                    has_z = True
        if has_met and has_jets and sum(1 for pt in event["jets"] if pt > 40.0) >= 2:
            add("events_2jets40", w)
            hists["met_2jets40"].fill(event["met"], w)
        if has_muons and has_z:
            add("events_zmumu", w)
            if has_met:
                hists["met_zmumu"].fill(event["met"], w)
    return hists, counts, weighted


def polar_to_cartesian(pt: float, eta: float, phi: float, mass: float) -> tuple[float, float, float, float]:
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return math.sqrt(px * px + py * py + pz * pz + mass * mass), px, py, pz


def assert_equal_to_loop(result, loop, weighted: bool, exact_weights: bool = True) -> None:
    hists, counts, sums = loop
    assert result.selected() == counts
    produced = {name for name in result.counts if ":" not in name and name in BINNING}
    assert produced == set(hists)
    for name, h in hists.items():
        assert result.counts[name].tolist() == h.counts, name
    if not weighted:
        assert result.weighted() == {}
        return
    approx = (lambda v: v) if exact_weights else (lambda v: pytest.approx(v, rel=1e-12, abs=1e-300))
    for name, h in hists.items():
        assert result.counts[name + ":sumw"].tolist() == approx(h.sumw), name
        assert result.counts[name + ":sumw2"].tolist() == approx(h.sumw2), name
    assert {k: list(v) for k, v in result.weighted().items()} == {k: approx(v) for k, v in sums.items()}


# ---- the real files -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hzz() -> str:
    return str(wheel_data(WHEEL, DATA + "uproot-HZZ.root"))


@pytest.fixture(scope="module")
def zmumu() -> str:
    return str(wheel_data(WHEEL, DATA + "uproot-Zmumu.root"))


@pytest.fixture(scope="module")
def dy_skim() -> str:
    return str(wheel_data(WHEEL, DATA + "uproot-small-dy-withoffsets.root"))


def hzz_events(path: str) -> list[dict]:
    with uproot.open(path) as file:
        rows = file["events"].arrays(["Muon_E", "Muon_Px", "Muon_Py", "Muon_Pz", "Muon_Charge", "Jet_Px", "Jet_Py",
                                      "MET_px", "MET_py", "EventWeight"], library="ak").tolist()
    return [{"muons": list(zip(r["Muon_E"], r["Muon_Px"], r["Muon_Py"], r["Muon_Pz"], r["Muon_Charge"], strict=True)),
             "jets": [math.sqrt(x * x + y * y) for x, y in zip(r["Jet_Px"], r["Jet_Py"], strict=True)],
             "met": math.sqrt(r["MET_px"] ** 2 + r["MET_py"] ** 2), "w": r["EventWeight"]} for r in rows]


@pytest.mark.parametrize("chunk_entries", [100_000, 500])
def test_hzz_tutorial_file_with_four_vectors_and_event_weights(hzz, chunk_entries):
    loop = event_loop(hzz_events(hzz), has_muons=True, has_met=True, has_jets=True)
    assert loop[1]["events"] == 2421 and loop[1]["events_zmumu"] > 500 and loop[1]["events_2jets40"] > 20
    schema = Schema.from_args("events", HZZ_COLUMNS, "EventWeight")
    result = reduce_files([hzz], schema=schema, chunk_entries=chunk_entries)
    assert result.weight == "EventWeight" and result.skipped == {}
    assert_equal_to_loop(result, loop, weighted=True, exact_weights=False)
    h = histograms(result.counts)["dimuon_mass"]  # hist Weight storage: sum w and sum w^2
    assert h.values(flow=True).tolist() == pytest.approx(loop[0]["dimuon_mass"].sumw, rel=1e-12)
    assert h.variances(flow=True).tolist() == pytest.approx(loop[0]["dimuon_mass"].sumw2, rel=1e-12)


def test_hzz_unweighted_when_asked(hzz):
    loop = event_loop(hzz_events(hzz), has_muons=True, has_met=True, has_jets=True)
    result = reduce_files([hzz], schema=Schema.from_args("events", HZZ_COLUMNS, "none"))
    assert result.weight is None
    assert_equal_to_loop(result, loop, weighted=False)


def test_zmumu_2010_muon_only_file_runs_its_muon_queries_and_names_what_is_missing(zmumu, caplog):
    with uproot.open(zmumu) as file:
        rows = file["events"].arrays(["E1", "px1", "py1", "pz1", "Q1", "E2", "px2", "py2", "pz2", "Q2"], library="ak").tolist()
    events = [{"muons": [(r["E1"], r["px1"], r["py1"], r["pz1"], r["Q1"]), (r["E2"], r["px2"], r["py2"], r["pz2"], r["Q2"])],
               "jets": [], "met": 0.0, "w": 1.0} for r in rows]
    loop = event_loop(events, has_muons=True, has_met=False, has_jets=False)
    assert loop[1]["events"] == 2304 and loop[1]["events_zmumu"] > 1500
    with caplog.at_level(logging.WARNING, logger="portaflow.cores.hep.reduce"):
        result = reduce_files([zmumu], schema=Schema.from_args("events", ZMUMU_COLUMNS), chunk_entries=700)
    assert result.queries == ("dimuon",) and result.weight is None
    assert_equal_to_loop(result, loop, weighted=False)
    assert set(result.skipped) == {"met_all", "met_2jets40", "met_zmumu"}
    assert result.skipped["met_2jets40"] == f"{zmumu} lacks Jet_pt, MET_pt"
    assert result.skipped["met_all"] == f"{zmumu} lacks MET_pt"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and zmumu in warnings[0] and "MET_pt" in warnings[0] and "Jet_pt" in warnings[0]
    peak = max(range(150), key=lambda k: result.counts["dimuon_mass"][k + 1])
    assert peak == 90  # real Z -> mu mu: the peak is in the 90-91 GeV bin


def test_nanoaod_skim_without_muon_kinematics_runs_the_met_queries(dy_skim):
    with uproot.open(dy_skim) as file:
        rows = file["tree"].arrays(["Jet_pt", "MET_pt"], library="ak").tolist()
    loop = event_loop([{"muons": [], "jets": r["Jet_pt"], "met": r["MET_pt"], "w": 1.0} for r in rows],
                      has_muons=False, has_met=True, has_jets=True)
    assert loop[1]["events"] == 501 and loop[1]["events_2jets40"] > 10
    result = reduce_files([dy_skim], schema=Schema.from_args("tree"), chunk_entries=150)
    assert result.queries == ("met_all", "met_2jets40")
    assert result.skipped == {"dimuon": f"{dy_skim} lacks Muon_eta, Muon_phi, Muon_mass",
                              "met_zmumu": f"{dy_skim} lacks Muon_eta, Muon_phi, Muon_mass"}
    assert_equal_to_loop(result, loop, weighted=False)


def test_wrong_tree_name_names_the_file_and_its_trees(dy_skim):
    with pytest.raises(SchemaError, match=r"no tree 'Events'; it holds \['tree'\]") as info:
        reduce_files([dy_skim])
    assert dy_skim in str(info.value)


def test_no_query_possible_is_an_error(zmumu):
    with pytest.raises(SchemaError, match="no query can run") as info:
        reduce_files([zmumu], schema=Schema.from_args("events"))
    assert "Muon_pt" in str(info.value) and zmumu in str(info.value)


def test_bad_mappings_are_refused():
    with pytest.raises(SchemaError, match="columns.muon: fields"):
        Schema.from_args(columns={"muon": {"px": "a", "py": "b", "charge": "q"}})
    with pytest.raises(SchemaError, match="one length"):
        Schema.from_args(columns={"muon": {"px": ["a", "b"], "py": ["c"], "pz": "d", "energy": "e", "charge": "q"}})
    with pytest.raises(SchemaError, match="keys among"):
        Schema.from_args(columns={"electron": {}})


def test_the_workflow_step_takes_the_mapping_and_writes_weighted_products(hzz, tmp_path):
    """The step args (tree, columns, weight) reach the core; JSON and ROOT carry sum w and sum w^2."""
    out = {"histograms": str(tmp_path / "h.root"), "histograms_json": str(tmp_path / "h.json")}
    steps.reduce(inputs={"events": [hzz]}, outputs=out,
                 args={"tree": "events", "columns": HZZ_COLUMNS, "weight": "EventWeight", "chunk_entries": 1000}, client=None)
    hists, counts, sums = event_loop(hzz_events(hzz), has_muons=True, has_met=True, has_jets=True)
    doc = json.loads(Path(out["histograms_json"]).read_text())
    assert doc["weight"] == "EventWeight" and "skipped" not in doc
    assert doc["counts"] == counts
    for name, h in hists.items():
        entry = doc["histograms"][name]
        assert entry["counts"] == h.counts[1:-1]
        assert entry["values"] == pytest.approx(h.sumw[1:-1], rel=1e-12)
        assert entry["variances"] == pytest.approx(h.sumw2[1:-1], rel=1e-12)
        assert entry["flow_values"] == pytest.approx([h.sumw[0], h.sumw[-1]], rel=1e-12)
    assert doc["weighted_counts"]["events"] == pytest.approx(sums["events"], rel=1e-12)
    with uproot.open(out["histograms"]) as file:
        th1 = file["met_all"]
        assert th1.values(flow=True).tolist() == pytest.approx(hists["met_all"].sumw, rel=1e-12)
        assert th1.variances(flow=True).tolist() == pytest.approx(hists["met_all"].sumw2, rel=1e-12)


def test_the_workflow_step_records_skipped_queries(zmumu, tmp_path):
    out = {"histograms": str(tmp_path / "h.root"), "histograms_json": str(tmp_path / "h.json")}
    steps.reduce(inputs={"events": zmumu}, outputs=out, args={"tree": "events", "columns": ZMUMU_COLUMNS}, client=None)
    doc = json.loads(Path(out["histograms_json"]).read_text())
    assert set(doc["histograms"]) == {"dimuon_mass", "dimuon_mass_fine"}
    assert set(doc["counts"]) == {"events", "os_pairs", "os_pairs_in_window", "events_zmumu"}
    assert doc["skipped"]["met_all"] == f"{zmumu} lacks MET_pt"
    with uproot.open(out["histograms"]) as file:
        assert set(file.keys(cycle=False)) == {"dimuon_mass", "dimuon_mass_fine"}


# ---- signed generator weights (genWeight), file lists and globs ------------------------------------------------

@pytest.fixture(scope="module")
def weighted_files(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("hep_weighted")
    paths = []
    for index in range(2):
        path = folder / f"weighted_{index}.root"
        write_events_file(path, GeneratorConfig(events=2500, seed=21, file_index=index, signal_fraction=0.3,
                                                gen_weight=True, negative_weight_fraction=0.2), basket_entries=600)
        paths.append(str(path))
    return paths


def generated_events(paths: list[str], weighted: bool = True) -> list[dict]:
    events = []
    for path in paths:
        with uproot.open(path) as file:
            names = ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "Jet_pt", "MET_pt"]
            rows = file["Events"].arrays(names + (["genWeight"] if weighted else []), library="ak").tolist()
        for r in rows:
            muons = [(*polar_to_cartesian(*m[:4]), m[4]) for m in
                     zip(r["Muon_pt"], r["Muon_eta"], r["Muon_phi"], r["Muon_mass"], r["Muon_charge"], strict=True)]
            events.append({"muons": muons, "jets": r["Jet_pt"], "met": r["MET_pt"], "w": r["genWeight"] if weighted else 1.0})
    return events


def test_signed_genweight_is_used_automatically(weighted_files, dask_client):
    events = generated_events(weighted_files)
    negative = sum(1 for e in events if e["w"] < 0)
    assert 0.15 * len(events) < negative < 0.25 * len(events)
    loop = event_loop(events, has_muons=True, has_met=True, has_jets=True)
    # the loop uses the muons' (E, p) from (pt, eta, phi, m) like the core's polar formula: masses agree
    # exactly but for values within an ulp of a bin edge, which these seeds do not produce
    for result in (reduce_files(weighted_files, chunk_entries=700),
                   reduce_files(weighted_files, chunk_entries=500, partition_entries=500, client=dask_client)):
        assert result.weight == "genWeight"
        assert_equal_to_loop(result, loop, weighted=True, exact_weights=True)
    sumw, _ = result.weighted()["events"]
    assert sumw < 0.7 * sum(abs(e["w"]) for e in events)  # negative weights really cancel part of the yield


def test_weighted_products_are_identical_however_the_work_is_split(weighted_files, dask_client, tmp_path):
    docs = []
    for k, (chunk, client) in enumerate([(10_000, None), (300, dask_client)]):
        out = {"histograms": str(tmp_path / f"h{k}.root"), "histograms_json": str(tmp_path / f"h{k}.json")}
        steps.reduce(inputs={"events": weighted_files}, outputs=out, args={"chunk_entries": chunk, "partition_entries": chunk},
                     client=client)
        docs.append(Path(out["histograms_json"]).read_bytes())
    assert docs[0] == docs[1]  # dyadic weights: exact sums, so even different chunkings agree to the byte


def test_file_lists_and_globs_equal_explicit_paths(weighted_files, tmp_path):
    folder = Path(weighted_files[0]).parent
    listing = folder / "dataset.txt"
    listing.write_text("# two files\n" + "".join(f"{Path(p).name}\n" for p in weighted_files))
    explicit = reduce_files(weighted_files)
    for given in ([str(listing)], str(folder / "weighted_*.root")):
        result = reduce_files(given)
        assert result.files == weighted_files
        for name in explicit.counts:
            assert result.counts[name].tolist() == explicit.counts[name].tolist(), name
    with pytest.raises(SchemaError, match="no file matches"):
        reduce_files(str(tmp_path / "nothing_*.root"))


def test_mixing_weighted_and_unweighted_files_is_refused(weighted_files, mixed_dataset):
    with pytest.raises(SchemaError, match="'genWeight' is missing from .*mixed_0.root"):
        reduce_files([weighted_files[0], mixed_dataset[0][0]])
    unweighted = reduce_files([weighted_files[0], mixed_dataset[0][0]], schema=Schema(weight=None))
    assert unweighted.weight is None
    loop = event_loop(generated_events([weighted_files[0]], False) + generated_events([mixed_dataset[0][0]], False),
                      has_muons=True, has_met=True, has_jets=True)
    assert_equal_to_loop(unweighted, loop, weighted=False)


# ---- RNTuple ---------------------------------------------------------------------------------------------------

def test_rntuple_gives_the_same_histograms_as_the_ttree(tmp_path, dask_client):
    """The same generated events (with signed genWeight) as a TTree and as an RNTuple of 3 clusters."""
    from portaflow.cores.hep.generate import write_events_rntuple

    config = GeneratorConfig(events=2600, seed=33, signal_fraction=0.3, gen_weight=True)
    ttree, rntuple = str(tmp_path / "events_ttree.root"), str(tmp_path / "events_rntuple.root")
    write_events_file(ttree, config, basket_entries=1000)
    write_events_rntuple(rntuple, config, cluster_entries=1000)
    with uproot.open(rntuple) as file:
        assert "RNTuple" in file["Events"].classname
        assert [c.num_first_entry for c in file["Events"].cluster_summaries] == [0, 1000, 2000]
    reference = reduce_files([ttree], chunk_entries=700)
    assert reference.weight == "genWeight" and reference.selected()["events_zmumu"] > 300
    loop = event_loop(generated_events([ttree]), has_muons=True, has_met=True, has_jets=True)
    assert_equal_to_loop(reference, loop, weighted=True)
    for result in (reduce_files([rntuple], chunk_entries=700),
                   reduce_files([rntuple], chunk_entries=400, partition_entries=400, client=dask_client)):
        assert result.weight == "genWeight" and result.truth == reference.truth
        assert sorted(result.counts) == sorted(reference.counts)
        for name, values in reference.counts.items():
            assert result.counts[name].tolist() == values.tolist(), name
