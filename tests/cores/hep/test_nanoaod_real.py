"""Real CMS NanoAOD (from the pinned coffea 2024.4.0 sdist on PyPI, fetched at set-up by tests/testdata.py) against
independent event loops written here: signed generator weights, all ADL queries, the Runs-tree normalisation and
a data/simulation run.

Files (coffea-2024.4.0/tests/samples/, never committed):
- nano_dy.root: Drell-Yan simulation, 40 events, tree `Events` with NanoAOD names (muons, electrons, jets with
  `Jet_btagDeepFlavB`, MET) and a signed `genWeight` (9 of 40 events negative, |w| about 26000); tree `Runs` with
  `genEventSumw_` (older NanoAOD's trailing underscore): the sum over the 850098 *produced* events.
- nano_dimuon.root: 2018 DoubleMuon collision data, 40 events, same names, no genWeight.
- nano_tree.root: simulation, 10 events, `Runs/genEventSumw` (no underscore).

The loops read with uproot, turn (pt, eta, phi, mass) into (E, px, py, pz) with `math`, and bin with the plain
Python ADL loop of test_adl_processor (its four-vector sums, pair and triplet choices by explicit loops).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot
from test_adl_processor import BINS, SYSTEMATICS, adl_loop, hzz_loops

from portaflow.cores.hep import adl, steps
from portaflow.cores.hep.plots import stack_components
from portaflow.cores.hep.processor import ProcessorSpec, Sample, run_processor, runs_sumw
from portaflow.cores.hep.reduce import inspect_files

from testdata import COFFEA_SDIST, wheel_data

SAMPLES = "coffea-2024.4.0/tests/samples/"
XSEC = 6077.22  # pb, the DY -> ll (m > 50 GeV) NNLO cross-section, as an analysis would give it
LUMI = 59_740.0  # pb^-1, 2018


@pytest.fixture(scope="module")
def nano() -> dict[str, str]:
    return {name: str(wheel_data(COFFEA_SDIST, f"{SAMPLES}nano_{name}.root")) for name in ("dy", "dimuon", "tree")}


# Opening a NanoAOD TTree reads the metadata of its ~1500 branches (seconds on a loaded machine): each file is
# read once for the loops and processed as one work item.
@pytest.fixture(scope="module")
def rows(nano) -> dict[str, tuple[list[dict], list[float]]]:
    return {name: nano_rows(nano[name]) for name in ("dy", "dimuon")}


@pytest.fixture(scope="module")
def loops(rows) -> dict[str, dict]:
    return {name: loops_for(*rows[name]) for name in rows}


@pytest.fixture(scope="module")
def specs(nano) -> dict[str, ProcessorSpec]:
    return {name: all_queries_spec(nano[name]) for name in ("dy", "dimuon")}


def polar_to_cartesian(p_t: float, e_ta: float, p_hi: float, m: float, extra: float) -> tuple:
    """(E, px, py, pz, extra, pt, eta, phi): the loop keeps pt, eta, phi as read (see test_adl_processor.pt)."""
    x, y, z = p_t * math.cos(p_hi), p_t * math.sin(p_hi), p_t * math.sinh(e_ta)
    return math.sqrt(x * x + y * y + z * z + m * m), x, y, z, extra, p_t, e_ta, p_hi


def nano_rows(path: str) -> tuple[list[dict], list[float]]:
    """Every event as the ADL loop's input; the genWeight per event (1.0 for data)."""
    names = [f"{c}_{f}" for c in ("Muon", "Electron") for f in ("pt", "eta", "phi", "mass", "charge")]
    names += ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagDeepFlavB", "MET_pt", "MET_phi"]
    with uproot.open(path) as file:
        tree = file["Events"]
        has_weight = "genWeight" in tree.keys()
        rows = tree.arrays(names + (["genWeight"] if has_weight else []), library="np")
    events, weights = [], []
    for k in range(len(rows["MET_pt"])):
        def objects(c: str, extra: str, k: int = k) -> list[tuple]:
            return [polar_to_cartesian(float(a), float(b), float(c_), float(d), float(e)) for a, b, c_, d, e in
                    zip(rows[f"{c}_pt"][k], rows[f"{c}_eta"][k], rows[f"{c}_phi"][k], rows[f"{c}_mass"][k],
                        rows[extra][k], strict=True)]
        met, met_phi = float(rows["MET_pt"][k]), float(rows["MET_phi"][k])
        events.append({"mu": objects("Muon", "Muon_charge"), "el": objects("Electron", "Electron_charge"),
                       "jet": objects("Jet", "Jet_btagDeepFlavB"), "met": (met * math.cos(met_phi), met * math.sin(met_phi), met, met_phi)})
        weights.append(float(rows["genWeight"][k]) if has_weight else 1.0)
    return events, weights


def runs_sum(path: str, branch: str) -> float:
    with uproot.open(path) as file:
        return math.fsum(float(v) for v in file["Runs"][branch].array(library="np"))


def all_queries_spec(path: str) -> ProcessorSpec:
    infos = inspect_files([path], "Events")
    spec, skipped = adl.processor_spec({i.path: i.branches for i in infos}, {})
    assert skipped == {} and spec.args["queries"] == [f"q{k}" for k in range(1, 9)]
    return spec


def loops_for(events: list[dict], weights: list[float]):
    entries = {"nominal": adl_loop(events), "muon_pt_up": adl_loop(events, muon_k=1.01),
               "muon_pt_down": adl_loop(events, muon_k=0.99), "jet_pt_up": adl_loop(events, jet_k=1.03),
               "jet_pt_down": adl_loop(events, jet_k=0.97)}
    return hzz_loops(entries, weights)


def test_weighted_adl_queries_on_real_drell_yan_nanoaod_normalised_by_its_runs_tree(nano, rows, loops, specs):
    """Signed genWeight, hist Weight storage: every bin of all eight queries under every systematic equals the
    loop's sum w x factor and sum w^2 x factor^2, with factor = xsec x lumi / Runs/genEventSumw_ (the produced
    sample's sum), not the 40 events' own sum."""
    events, weights = rows["dy"]
    negative = sum(1 for w in weights if w < 0)
    assert negative == 9 and len(events) == 40  # the pinned file: unweighted counts would overstate the yield
    assert math.fsum(weights) < 0.6 * math.fsum(abs(w) for w in weights)
    produced = runs_sum(nano["dy"], "genEventSumw_")
    assert produced > 1e4 * math.fsum(weights)  # the skim's own sum understates it by orders of magnitude
    factor = XSEC * LUMI / produced
    loops = loops["dy"]
    for name in ("met", "jet_pt", "jet_pt_central", "dimuon_mass", "met_os_mumu", "ht_clean", "trijet_pt"):
        assert sum(loops["nominal"][name].sumw2) > 0, name  # the real file fills these queries
    run = run_processor([Sample("dy", (nano["dy"],), xsec=XSEC)], specs["dy"], luminosity=LUMI)
    result = run.samples["dy"]
    assert result.events == 40 and result.negative == 9
    assert result.sumw == pytest.approx(math.fsum(weights), rel=1e-12)
    assert (result.sumw_source, result.sumw_used) == ("Runs/genEventSumw_", produced)
    assert run.scale["dy"] == pytest.approx(factor, rel=1e-15)
    assert run.summary()["dy"]["sumw_source"] == "Runs/genEventSumw_"
    assert set(run.histograms) == set(BINS)
    for name, h in run.histograms.items():
        for syst in SYSTEMATICS:
            one = h[{"dataset": "dy", "systematic": syst}]
            loop = loops[syst][name]
            assert one.values().tolist() == pytest.approx([v * factor for v in loop.sumw], rel=1e-9, abs=1e-15), (name, syst)
            assert one.variances().tolist() == pytest.approx([v * factor ** 2 for v in loop.sumw2], rel=1e-9,
                                                             abs=1e-18), (name, syst)
    # the negative weights matter bin by bin: some bin's weighted sum is below what its entries alone would give
    met = loops["nominal"]["met"]
    assert any(w < 0 for w in met.sumw)


def test_all_adl_queries_on_real_collision_data(nano, loops, specs):
    """2018 DoubleMuon data: unweighted, never scaled; every bin is an exact count equal to the loop's."""
    loops = loops["dimuon"]
    assert sum(loops["nominal"]["dimuon_mass"].sumw) >= 30  # a dimuon trigger: pairs in nearly every event
    run = run_processor([Sample("data", (nano["dimuon"],), is_data=True, weight=None)], specs["dimuon"])
    assert run.scale == {"data": 1.0} and run.samples["data"].sumw_source is None
    for name, h in run.histograms.items():
        for syst in SYSTEMATICS:
            assert h[{"dataset": "data", "systematic": syst}].values().tolist() == loops[syst][name].sumw, (name, syst)


Q1 = ProcessorSpec("portaflow.cores.hep.adl:process", ("MET_pt",), {"queries": ["q1"]})


def test_sum_of_weights_comes_from_the_runs_tree_else_from_the_events(nano, tmp_path):
    """Runs/genEventSumw (newer name) and genEventSumw_ (older) are used when every file has one; a file without a
    Runs tree (here nano_dy's events copied without it) falls back to the sum over the events, for the whole
    sample; an explicit `sumw` wins over both."""
    with uproot.open(nano["dy"]) as file:
        columns = file["Events"].arrays(["MET_pt", "genWeight"], library="np")
    stripped = str(tmp_path / "dy_no_runs.root")
    with uproot.recreate(stripped) as out:
        out["Events"] = columns
    event_sum = math.fsum(float(w) for w in columns["genWeight"])

    def used(*paths: str, **kwargs) -> tuple:
        run = run_processor([Sample("mc", paths, xsec=1.0, **kwargs)], Q1, luminosity=1.0)
        r = run.samples["mc"]
        assert run.scale["mc"] == pytest.approx(1.0 / r.sumw_used, rel=1e-15)
        return r.sumw_source, r.sumw_used

    # the rule itself on the Runs trees (a run through run_processor on nano_dy is in the first test)
    assert runs_sumw([nano["tree"]]) == (runs_sum(nano["tree"], "genEventSumw"), "Runs/genEventSumw")
    assert runs_sum(nano["tree"], "genEventSumw") == 49919.0  # produced; the file kept 10 events of weight 1
    assert runs_sumw([nano["dy"], nano["tree"]]) == (
        runs_sum(nano["dy"], "genEventSumw_") + runs_sum(nano["tree"], "genEventSumw"),
        "Runs/genEventSumw + Runs/genEventSumw_")
    source, value = used(stripped)
    assert source == "events" and value == pytest.approx(event_sum, rel=1e-12)
    assert runs_sumw([nano["dy"], stripped]) is None  # one file without Runs: the events' sum for the whole sample
    assert used(stripped, sumw=1234.5) == ("sumw argument", 1234.5)


def test_data_and_drell_yan_simulation_stacked_through_the_process_step(nano, loops, tmp_path):
    """data = nano_dimuon, dy = nano_dy (xsec, lumi): the process step's JSON and ROOT products and the stacked
    plot's numbers, against the loops with the Runs-tree normalisation."""
    out = {"histograms_json": str(tmp_path / "p.json"), "histograms": str(tmp_path / "p.root")}
    steps.process(inputs={"data": nano["dimuon"], "dy": nano["dy"]}, outputs=out, client=None,
                  args={"samples": {"data": {"kind": "data"}, "dy": {"xsec": XSEC}}, "luminosity": LUMI,
                        "processor_args": {"queries": ["q1", "q5"]}})
    doc = json.loads(Path(out["histograms_json"]).read_text())
    factor = XSEC * LUMI / runs_sum(nano["dy"], "genEventSumw_")
    info = doc["samples"]
    assert info["dy"]["sumw_source"] == "Runs/genEventSumw_" and info["dy"]["negative_weight_events"] == 9
    assert info["dy"]["scale"] == pytest.approx(factor, rel=1e-15) and info["data"]["scale"] == 1.0
    assert "sumw_source" not in info["data"]
    expected = {}
    for k, (name, file) in enumerate((("data", "dimuon"), ("dy", "dy"))):
        nominal = loops[file]["nominal"]
        scale = 1.0 if name == "data" else factor
        for hist_name in ("dimuon_mass", "met", "met_os_mumu"):
            h = doc["histograms"][hist_name]
            assert h["axes"][0]["categories"] == ["data", "dy"]
            assert h["values"][k][0] == pytest.approx([v * scale for v in nominal[hist_name].sumw], rel=1e-9, abs=1e-15)
            assert h["variances"][k][0] == pytest.approx([v * scale ** 2 for v in nominal[hist_name].sumw2], rel=1e-9,
                                                         abs=1e-18)
        expected[name] = [v * scale for v in nominal["dimuon_mass"].sumw]
    parts = stack_components(doc, "dimuon_mass")
    assert parts["data"].tolist() == expected["data"] and list(parts["mc"]) == ["dy"]
    assert parts["mc"]["dy"].tolist() == pytest.approx(expected["dy"], rel=1e-9, abs=1e-15)
    assert np.asarray(parts["mc_total"]["nominal"]).tolist() == pytest.approx(expected["dy"], rel=1e-9, abs=1e-15)
    with uproot.open(out["histograms"]) as file:
        assert file["dimuon_mass__dy__nominal"].values().tolist() == pytest.approx(expected["dy"], rel=1e-12, abs=1e-15)
    steps.plot_samples(inputs={"histograms": out["histograms_json"]}, outputs={"zpeak": str(tmp_path / "z.png")},
                       args={"histograms": {"zpeak": "dimuon_mass"}})
    assert (tmp_path / "z.png").read_bytes()[:4] == b"\x89PNG"


def test_reduce_fills_weight_storage_histograms_from_the_signed_genweight(nano, loops, rows):
    """The `reduce` path (NanoAOD default schema, weight `genWeight` when present) on nano_dy: the dimuon mass of
    every opposite-charge pair and the MET of every event as hist Weight storage, sum w and sum w^2 per bin equal
    to the loop's (unscaled), entries per bin equal to the unweighted loop's."""
    from portaflow.cores.hep.products import histograms
    from portaflow.cores.hep.reduce import reduce_files

    result = reduce_files([nano["dy"]])
    hists = histograms(result.counts)
    unweighted = loops_for(rows["dy"][0], [1.0] * 40)["nominal"]
    for ours, theirs in (("dimuon_mass", "dimuon_mass"), ("met_all", "met")):
        h = hists[ours]
        assert h.storage_type is hist.storage.Weight, ours
        loop = loops["dy"]["nominal"][theirs]
        assert h.values().tolist() == pytest.approx(loop.sumw, rel=1e-9, abs=1e-9), ours
        assert h.variances().tolist() == pytest.approx(loop.sumw2, rel=1e-9, abs=1e-9), ours
        assert result.counts[ours][1:-1].tolist() == unweighted[theirs].sumw, ours
    assert sum(1 for w in rows["dy"][1] if w < 0) == 9 and min(hists["met_all"].values()) < 0
