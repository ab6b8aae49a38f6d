"""The ADL benchmark queries Q1-Q8 with systematics, the processor interface, samples and normalisation, each
against an independent plain-Python event loop written here.

Real data: the CMS HEP tutorial ntuple (uproot-HZZ.root, 2012 open data simulation, from the pinned
scikit-hep-testdata 0.3.12 wheel) has muons, electrons, jets with a b-tag and MET as four-vectors: every query
Q1-Q8 runs on it. Real NanoAOD with negative `genWeight` (from the coffea sdist) is in test_nanoaod_real.py,
which reuses this file's loop; here normalisation with negative weights and the weight variation are checked on
generated NanoAOD-like files (the real ones have no scale-factor branches).

The loops read with uproot into Python lists and compute everything with `math`: four-vector sums in
(E, px, py, pz), Delta phi with math.remainder, the trijet and Z-pair choices by explicit loops over index
triples and pairs.
"""

from __future__ import annotations

import bisect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import uproot
from test_real_data import DATA, WHEEL

from portaflow.cores.hep import adl, steps
from portaflow.cores.hep.generate import GeneratorConfig, write_events_file
from portaflow.cores.hep.plots import stack_components
from portaflow.cores.hep.processor import ProcessorSpec, Sample, run_processor
from portaflow.cores.hep.reduce import inspect_files
from portaflow.cores.hep.schema import SchemaError

from testdata import wheel_data

HZZ_OBJECTS = {
    "muon": {"px": "Muon_Px", "py": "Muon_Py", "pz": "Muon_Pz", "energy": "Muon_E", "charge": "Muon_Charge"},
    "electron": {"px": "Electron_Px", "py": "Electron_Py", "pz": "Electron_Pz", "energy": "Electron_E",
                 "charge": "Electron_Charge"},
    "jet": {"px": "Jet_Px", "py": "Jet_Py", "pz": "Jet_Pz", "energy": "Jet_E", "btag": "Jet_btag"},
    "met": {"px": "MET_px", "py": "MET_py"},
}
BINS = {  # name: (bins, lo, hi), written out here again
    "met": (100, 0.0, 200.0), "jet_pt": (100, 0.0, 200.0), "jet_pt_central": (100, 0.0, 200.0),
    "met_2jets40": (100, 0.0, 200.0), "met_os_mumu": (100, 0.0, 200.0), "dimuon_mass": (150, 0.0, 150.0),
    "trijet_pt": (100, 0.0, 200.0), "trijet_btag": (96, -1.0, 5.0), "ht_clean": (100, 0.0, 400.0),
    "mt_lepton": (100, 0.0, 200.0),
}
SYSTEMATICS = ["nominal", "muon_pt_up", "muon_pt_down", "jet_pt_up", "jet_pt_down"]


class Loop:
    """In-range bins only (as the product); sum of weights and of squared weights."""

    def __init__(self, bins: int, lo: float, hi: float) -> None:
        self.edges = [lo + k * (hi - lo) / bins for k in range(bins + 1)]
        self.sumw = [0.0] * bins
        self.sumw2 = [0.0] * bins

    def fill(self, x: float, w: float) -> None:
        if self.edges[0] <= x < self.edges[-1]:
            k = bisect.bisect_right(self.edges, x) - 1
            self.sumw[k] += w
            self.sumw2[k] += w * w


def scaled(p: tuple, k: float) -> tuple:
    """(E, px, py, pz, extra[, pt, eta, phi]) with the momentum scaled by k and the mass kept."""
    e, x, y, z, extra = p[:5]
    m2 = max(e * e - (x * x + y * y + z * z), 0.0)
    x, y, z = k * x, k * y, k * z
    polar = (k * p[5], p[6], p[7]) if len(p) == 8 else ()
    return math.sqrt(x * x + y * y + z * z + m2), x, y, z, extra, *polar


# A particle read from polar branches (NanoAOD) carries its (pt, eta, phi) as read: NanoAOD rounds pt to few
# mantissa bits, so values sit exactly on bin edges and hypot(pt cos phi, pt sin phi) may land an ulp off.
def pt(p: tuple) -> float:
    return p[5] if len(p) == 8 else math.hypot(p[1], p[2])


def eta(p: tuple) -> float:
    return p[6] if len(p) == 8 else math.asinh(p[3] / pt(p))


def phi(p: tuple) -> float:
    return p[7] if len(p) == 8 else math.atan2(p[2], p[1])


def mass(*ps: tuple) -> float:
    e, x, y, z = (sum(p[k] for p in ps) for k in range(4))
    return math.sqrt(max(e * e - (x * x + y * y + z * z), 0.0))


class Entries:
    """The values a histogram gets, each with its event's index (binned later with any weights)."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, int]] = []

    def fill(self, x: float, event: int) -> None:
        self.entries.append((x, event))

    def binned(self, name: str, weights: list[float]) -> Loop:
        h = Loop(*BINS[name])
        for x, event in self.entries:
            h.fill(x, weights[event])
        return h


def adl_loop(events: list[dict], muon_k: float = 1.0, jet_k: float = 1.0) -> dict[str, Entries]:
    """events: {'mu': [(E, px, py, pz, q[, pt, eta, phi])], 'el': [...], 'jet': [(E, px, py, pz, btag[, pt, eta,
    phi])], 'met': (px, py[, pt, phi])}."""
    h = {name: Entries() for name in BINS}
    for event_index, event in enumerate(events):
        mus = [scaled(m, muon_k) for m in event["mu"]]
        els = event["el"]
        jets = [scaled(j, jet_k) for j in event["jet"]]
        met = event["met"][2] if len(event["met"]) == 4 else math.hypot(*event["met"])
        met_phi = event["met"][3] if len(event["met"]) == 4 else math.atan2(event["met"][1], event["met"][0])
        h["met"].fill(met, event_index)
        for j in jets:
            h["jet_pt"].fill(pt(j), event_index)
            if abs(eta(j)) < 1.0:
                h["jet_pt_central"].fill(pt(j), event_index)
        if sum(1 for j in jets if pt(j) > 40.0) >= 2:
            h["met_2jets40"].fill(met, event_index)
        z_candidate = False
        for i in range(len(mus)):
            for k in range(i + 1, len(mus)):
                if mus[i][4] * mus[k][4] < 0:
                    m = mass(mus[i], mus[k])
                    h["dimuon_mass"].fill(m, event_index)
                    z_candidate |= 60.0 < m < 120.0
        if z_candidate:
            h["met_os_mumu"].fill(met, event_index)
        if len(jets) >= 3:  # Q6
            best, best_distance = None, math.inf
            for a in range(len(jets)):
                for b in range(a + 1, len(jets)):
                    for c in range(b + 1, len(jets)):
                        distance = abs(mass(jets[a], jets[b], jets[c]) - 172.5)
                        if distance < best_distance:
                            best, best_distance = (a, b, c), distance
            trio = [jets[k] for k in best]
            h["trijet_pt"].fill(math.hypot(sum(j[1] for j in trio), sum(j[2] for j in trio)), event_index)
            h["trijet_btag"].fill(max(j[4] for j in trio), event_index)
        leptons = [p for p in mus + els if pt(p) > 10.0]  # Q7
        ht = 0.0
        for j in jets:
            if pt(j) > 30.0 and all(math.hypot(eta(j) - eta(lep), math.remainder(phi(j) - phi(lep), 2 * math.pi)) >= 0.4
                                    for lep in leptons):
                ht += pt(j)
        h["ht_clean"].fill(ht, event_index)
        light = [(13, m) for m in mus] + [(11, e) for e in els]  # Q8
        if len(light) >= 3:
            best, best_distance = None, math.inf
            for a in range(len(light)):
                for b in range(a + 1, len(light)):
                    (fa, pa), (fb, pb) = light[a], light[b]
                    if fa == fb and pa[4] * pb[4] < 0 and abs(mass(pa, pb) - 91.2) < best_distance:
                        best, best_distance = (a, b), abs(mass(pa, pb) - 91.2)
            if best is not None:
                rest = [p for k, (_, p) in enumerate(light) if k not in best]
                lead = max(rest, key=pt)  # first of equals, as the loop order
                mt = math.sqrt(2.0 * pt(lead) * met * (1.0 - math.cos(phi(lead) - met_phi)))
                h["mt_lepton"].fill(mt, event_index)
    return h


@pytest.fixture(scope="module")
def hzz() -> str:
    return str(wheel_data(WHEEL, DATA + "uproot-HZZ.root"))


@pytest.fixture(scope="module")
def hzz_rows(hzz) -> tuple[list[dict], list[float]]:
    names = ["Muon_E", "Muon_Px", "Muon_Py", "Muon_Pz", "Muon_Charge", "Electron_E", "Electron_Px", "Electron_Py",
             "Electron_Pz", "Electron_Charge", "Jet_E", "Jet_Px", "Jet_Py", "Jet_Pz", "Jet_btag", "MET_px", "MET_py",
             "EventWeight"]
    with uproot.open(hzz) as file:
        rows = file["events"].arrays(names, library="ak").tolist()
    events = [{"mu": list(zip(r["Muon_E"], r["Muon_Px"], r["Muon_Py"], r["Muon_Pz"], r["Muon_Charge"], strict=True)),
               "el": list(zip(r["Electron_E"], r["Electron_Px"], r["Electron_Py"], r["Electron_Pz"], r["Electron_Charge"],
                              strict=True)),
               "jet": list(zip(r["Jet_E"], r["Jet_Px"], r["Jet_Py"], r["Jet_Pz"], r["Jet_btag"], strict=True)),
               "met": (r["MET_px"], r["MET_py"])} for r in rows]
    return events, [r["EventWeight"] for r in rows]


def hzz_spec(hzz: str, **args) -> ProcessorSpec:
    infos = inspect_files([hzz], "events")
    spec, skipped = adl.processor_spec({i.path: i.branches for i in infos}, {"objects": HZZ_OBJECTS, **args}, "events")
    assert skipped == {}
    return spec


@pytest.fixture(scope="module")
def hzz_entries(hzz_rows) -> dict[str, dict[str, Entries]]:
    """The loop's entries for every systematic (the pT scales are the processor's defaults: 1% muons, 3% jets)."""
    events, _ = hzz_rows
    return {"nominal": adl_loop(events), "muon_pt_up": adl_loop(events, muon_k=1.01),
            "muon_pt_down": adl_loop(events, muon_k=0.99), "jet_pt_up": adl_loop(events, jet_k=1.03),
            "jet_pt_down": adl_loop(events, jet_k=0.97)}


def hzz_loops(entries: dict[str, dict[str, Entries]], weights: list[float]) -> dict[str, dict[str, Loop]]:
    return {syst: {name: e.binned(name, weights) for name, e in per.items()} for syst, per in entries.items()}


def test_all_eight_adl_queries_and_pt_scale_systematics_on_real_cms_data(hzz, hzz_rows, hzz_entries):
    """As a data sample (every event weighs 1, no scaling): every bin of every query and systematic is an exact
    count and equals the loop's."""
    events, _ = hzz_rows
    loops = hzz_loops(hzz_entries, [1.0] * len(events))
    # the file exercises every query: enough entries in each, and the pT scales move some of them
    assert min(sum(loops["nominal"][n].sumw) for n in BINS) >= 60
    three_leptons = sum(1 for e in events if len(e["mu"]) + len(e["el"]) >= 3)
    assert 50 < sum(loops["nominal"]["mt_lepton"].sumw) <= three_leptons
    assert sum(loops["nominal"]["trijet_btag"].sumw) == sum(1 for e in events if len(e["jet"]) >= 3)
    for name in ("jet_pt_central", "met_2jets40", "trijet_pt", "ht_clean"):
        assert loops["jet_pt_up"][name].sumw != loops["nominal"][name].sumw, name
    for name in ("dimuon_mass", "mt_lepton"):
        assert loops["muon_pt_up"][name].sumw != loops["nominal"][name].sumw, name
    run = run_processor([Sample("hzz", (hzz,), is_data=True, weight=None)], hzz_spec(hzz), chunk_entries=1000)
    assert set(run.histograms) == set(BINS)
    for name, h in run.histograms.items():
        assert list(h.axes["dataset"]) == ["hzz"] and list(h.axes["systematic"]) == SYSTEMATICS
        for syst in SYSTEMATICS:
            assert h[{"dataset": "hzz", "systematic": syst}].values().tolist() == loops[syst][name].sumw, (name, syst)
    assert run.scale == {"hzz": 1.0} and run.samples["hzz"].events == len(events)


def test_weighted_sample_is_normalised_and_dask_equals_in_process(hzz, hzz_rows, hzz_entries, dask_client):
    """EventWeight as the generator weight, xsec 2 pb, 3 pb^-1: values = loop sum w * 6 / (sum of all weights),
    variances = sum w^2 times its square; two Dask workers give bit-identical histograms."""
    events, weights = hzz_rows
    loops = hzz_loops(hzz_entries, weights)
    factor = 2.0 * 3.0 / math.fsum(weights)
    sample = Sample("hzz", (hzz,), xsec=2.0, weight="EventWeight")
    spec = hzz_spec(hzz, queries=["q1", "q5", "q6", "q8"])
    local = run_processor([sample], spec, luminosity=3.0, chunk_entries=800)
    assert local.samples["hzz"].sumw == pytest.approx(math.fsum(weights), rel=1e-12)
    assert local.scale["hzz"] == pytest.approx(factor, rel=1e-12)
    assert set(local.histograms) == {"met", "met_os_mumu", "dimuon_mass", "trijet_pt", "trijet_btag", "mt_lepton"}
    for name, h in local.histograms.items():
        for syst in SYSTEMATICS:
            one = h[{"dataset": "hzz", "systematic": syst}]
            assert one.values().tolist() == pytest.approx([v * factor for v in loops[syst][name].sumw], rel=1e-9, abs=1e-15)
            assert one.variances().tolist() == pytest.approx([v * factor ** 2 for v in loops[syst][name].sumw2],
                                                             rel=1e-9, abs=1e-18)
    remote = run_processor([sample], spec, luminosity=3.0, chunk_entries=800, partition_entries=800, client=dask_client)
    for name, h in local.histograms.items():
        assert np.array_equal(remote.histograms[name].view(flow=True), h.view(flow=True)), name


def test_missing_objects_skip_their_queries_with_one_message(tmp_path):
    """A generated NanoAOD-like file has muons, jets (no b-tag) and MET but no electrons."""
    path = str(tmp_path / "events.root")
    write_events_file(path, GeneratorConfig(events=50, seed=1))
    run, skipped, _ = adl.plan({path: inspect_files([path], "Events")[0].branches})
    assert run == ["q1", "q2", "q3", "q4", "q5"]
    assert skipped == {"q6": f"{path} lacks Jet_btagDeepFlavB",
                       "q7": f"{path} lacks Electron_eta, Electron_phi, Electron_pt",
                       "q8": f"{path} lacks Electron_charge, Electron_eta, Electron_mass, Electron_phi, Electron_pt"}
    with pytest.raises(SchemaError, match="no ADL query can run"):
        adl.processor_spec({path: ["MET_phi"]}, {})
    with pytest.raises(SchemaError, match="objects.jet: fields"):
        adl.object_mapping({"jet": {"px": "a", "py": "b"}})


# ---- samples, normalisation with negative weights, weight variations, the workflow steps -----------------------

@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("hep_samples")
    configs = {
        "data": GeneratorConfig(events=3000, seed=61, signal_fraction=0.3),
        "dy": GeneratorConfig(events=2000, seed=62, signal_fraction=1.0, background=False, gen_weight=True,
                              negative_weight_fraction=0.2, sf_weights=True),
        "ttbar": GeneratorConfig(events=1500, seed=63, signal_fraction=0.0, gen_weight=True,
                                 negative_weight_fraction=0.3, sf_weights=True),
    }
    paths = {}
    for name, config in configs.items():
        paths[name] = str(folder / f"{name}.root")
        write_events_file(paths[name], config, basket_entries=600)
    return paths


def generated_rows(path: str) -> list[dict]:
    with uproot.open(path) as file:
        tree = file["Events"]
        names = ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "MET_pt"]
        names += [n for n in ("genWeight", "muonSF_up", "muonSF_down") if n in tree.keys()]
        return tree.arrays(names, library="ak").tolist()


def mumu_loop(rows: list[dict], weights: list[float]) -> tuple[Loop, Loop]:
    """dimuon_mass (every opposite-charge pair) and met (every event), from (pt, eta, phi, m) by math."""
    masses, met = Loop(150, 0.0, 150.0), Loop(100, 0.0, 200.0)
    for r, w in zip(rows, weights, strict=True):
        met.fill(r["MET_pt"], w)
        mus = []
        for p_t, e_ta, p_hi, m, q in zip(r["Muon_pt"], r["Muon_eta"], r["Muon_phi"], r["Muon_mass"], r["Muon_charge"],
                                         strict=True):
            x, y, z = p_t * math.cos(p_hi), p_t * math.sin(p_hi), p_t * math.sinh(e_ta)
            mus.append((math.sqrt(x * x + y * y + z * z + m * m), x, y, z, q))
        for i in range(len(mus)):
            for k in range(i + 1, len(mus)):
                if mus[i][4] * mus[k][4] < 0:
                    masses.fill(mass(mus[i], mus[k]), w)
    return masses, met


SAMPLE_ARGS = {"data": {"kind": "data"}, "dy": {"xsec": 120.0}, "ttbar": {"xsec": 30.0}}
LUMI = 2.5


def test_samples_normalised_with_negative_weights_and_a_weight_variation(sample_files, dask_client, tmp_path):
    out = {"histograms_json": str(tmp_path / "p.json"), "histograms": str(tmp_path / "p.root")}
    steps.process(inputs={name: path for name, path in sample_files.items()}, outputs=out,
                  args={"samples": SAMPLE_ARGS, "luminosity": LUMI, "chunk_entries": 700, "partition_entries": 700,
                        "processor_args": {"queries": ["q1", "q5"],
                                           "weight_variations": {"muon_sf": ["muonSF_up", "muonSF_down"]}}},
                  client=dask_client)
    doc = json.loads(Path(out["histograms_json"]).read_text())
    h = doc["histograms"]["dimuon_mass"]
    assert [a["name"] for a in h["axes"]] == ["dataset", "systematic", "x"]
    assert h["axes"][0]["categories"] == ["data", "dy", "ttbar"]
    systematics = h["axes"][1]["categories"]
    assert systematics == [*SYSTEMATICS, "muon_sf_up", "muon_sf_down"]
    for k, name in enumerate(["data", "dy", "ttbar"]):
        rows = generated_rows(sample_files[name])
        w = [r.get("genWeight", 1.0) for r in rows]
        negative = sum(1 for x in w if x < 0)
        info = doc["samples"][name]
        assert info["events"] == len(rows) and info["negative_weight_events"] == negative
        assert info["sumw"] == math.fsum(w)  # dyadic weights: exact
        factor = 1.0 if name == "data" else SAMPLE_ARGS[name]["xsec"] * LUMI / math.fsum(w)
        assert info["scale"] == pytest.approx(factor, rel=1e-15)
        if name != "data":
            assert negative > 0.15 * len(rows) and math.fsum(w) < 0.75 * math.fsum(abs(x) for x in w)
        for syst, weights in (("nominal", w),
                              ("muon_sf_up", [x * r.get("muonSF_up", 1.0) for x, r in zip(w, rows, strict=True)]),
                              ("muon_sf_down", [x * r.get("muonSF_down", 1.0) for x, r in zip(w, rows, strict=True)])):
            masses, met = mumu_loop(rows, weights)
            j = systematics.index(syst)
            assert h["values"][k][j] == pytest.approx([v * factor for v in masses.sumw], rel=1e-12, abs=1e-12), (name, syst)
            assert h["variances"][k][j] == pytest.approx([v * factor ** 2 for v in masses.sumw2], rel=1e-12, abs=1e-12)
            assert doc["histograms"]["met"]["values"][k][j] == pytest.approx([v * factor for v in met.sumw], rel=1e-12,
                                                                            abs=1e-12)
        if name == "data":  # data is never varied
            assert h["values"][k][systematics.index("muon_sf_up")] == h["values"][k][0]
    # the stacked plot's numbers: data summed, simulation per sample, totals per systematic
    parts = stack_components(doc, "dimuon_mass")
    assert list(parts["mc"]) == ["dy", "ttbar"]
    assert parts["data"].tolist() == h["values"][0][0]
    assert parts["mc_total"]["muon_sf_up"].tolist() == pytest.approx(
        (np.asarray(h["values"][1][-2]) + np.asarray(h["values"][2][-2])).tolist(), rel=1e-15)
    with uproot.open(out["histograms"]) as file:
        th1 = file["dimuon_mass__dy__nominal"]
        assert th1.values().tolist() == h["values"][1][0]
        assert th1.variances().tolist() == pytest.approx(h["variances"][1][0], rel=1e-15)
    steps.plot_samples(inputs={"histograms": out["histograms_json"]}, outputs={"zpeak": str(tmp_path / "z.png")},
                       args={"histograms": {"zpeak": "dimuon_mass"}, "log_y": True})
    assert Path(tmp_path / "z.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no histogram 'jet_pt'"):
        steps.plot_samples(inputs={"histograms": out["histograms_json"]}, outputs={"jet_pt": str(tmp_path / "j.png")},
                           args={})


def test_sample_arguments_are_checked(sample_files):
    with pytest.raises(SchemaError, match="xsec: the cross-section in pb is required"):
        Sample.from_args("dy", {"files": sample_files["dy"]})
    with pytest.raises(SchemaError, match="a data sample takes no xsec"):
        Sample.from_args("data", {"files": sample_files["data"], "kind": "data", "xsec": 1.0})
    with pytest.raises(SchemaError, match="needs a luminosity"):
        run_processor([Sample.from_args("dy", {"files": sample_files["dy"], "xsec": 1.0})],
                      ProcessorSpec("portaflow.cores.hep.adl:process", ("MET_pt",), {"queries": ["q1"]}))
    with pytest.raises(SchemaError, match="lacks genWeight"):  # data declared as simulation
        run_processor([Sample.from_args("data", {"files": sample_files["data"], "xsec": 1.0})],
                      ProcessorSpec("portaflow.cores.hep.adl:process", ("MET_pt",), {"queries": ["q1"]}), luminosity=1.0)


# ---- a user's processor -----------------------------------------------------------------------------------------

def test_a_user_processor_named_in_the_workflow_runs_chunked_on_dask(sample_files, dask_client, tmp_path):
    """tests/cores/hep/user_processor.py stands for the user's module: it histograms the leading muon's pT.
    The step imports it by name in each worker; the result equals the loop for every chunking."""
    rows = generated_rows(sample_files["dy"])
    expected = Loop(50, 0.0, 100.0)
    for r in rows:
        if r["Muon_pt"]:
            expected.fill(max(r["Muon_pt"]), r["genWeight"])
    factor = 120.0 * LUMI / math.fsum(r["genWeight"] for r in rows)
    docs = []
    for k, (chunk, client) in enumerate([(100_000, None), (300, dask_client)]):
        out = {"histograms_json": str(tmp_path / f"u{k}.json")}
        steps.process(inputs={"dy": sample_files["dy"]}, outputs=out, client=client,
                      args={"samples": {"dy": SAMPLE_ARGS["dy"]}, "luminosity": LUMI, "chunk_entries": chunk,
                            "processor": "user_processor:leading_muon_pt", "branches": ["Muon_pt"],
                            "processor_args": {"bins": 50, "hi": 100.0}})
        docs.append(json.loads(Path(out["histograms_json"]).read_text()))
    for doc in docs:
        h = doc["histograms"]["leading_muon_pt"]
        assert [a["name"] for a in h["axes"]] == ["dataset", "x"]
        assert h["values"][0] == pytest.approx([v * factor for v in expected.sumw], rel=1e-12, abs=1e-12)
        assert doc["processor"] == "user_processor:leading_muon_pt"
    with pytest.raises(SchemaError, match="cannot import no_such_module"):
        steps.process(inputs={"dy": sample_files["dy"]}, outputs={"histograms_json": str(tmp_path / "x.json")},
                      client=None, args={"samples": {"dy": SAMPLE_ARGS["dy"]}, "luminosity": 1.0,
                                         "processor": "no_such_module:f"})
    assert not (tmp_path / "x.json").exists()


# ---- fits: weighted histograms, real data ----------------------------------------------------------------------

def test_weighted_fit_is_unbiased_and_its_error_follows_the_effective_entries(tmp_path):
    """Z decays only, signed genWeight (20% negative): the weighted fit (scaled Poisson, sum w and sum w^2) finds
    the generated mass, and its error exceeds the unweighted fit's by sqrt(entries / effective entries), with the
    effective entries (sum w)^2 / sum w^2 computed here from the file's weights of the pairs in the fit range."""
    from portaflow.cores.hep.fit import fit_z_peak
    from portaflow.cores.hep.generate import Z_MASS
    from portaflow.cores.hep.reduce import reduce_files

    path = str(tmp_path / "z.root")
    write_events_file(path, GeneratorConfig(events=25_000, seed=71, signal_fraction=1.0, background=False,
                                            gen_weight=True, negative_weight_fraction=0.2), basket_entries=20_000)
    result = reduce_files([path])
    counts = result.counts["dimuon_mass_fine"][1:-1]
    edges = np.linspace(70.0, 110.0, 161)
    weighted, _ = fit_z_peak(edges, result.counts["dimuon_mass_fine:sumw"][1:-1], (70.0, 110.0),
                             result.counts["dimuon_mass_fine:sumw2"][1:-1])
    plain, _ = fit_z_peak(edges, counts, (70.0, 110.0))
    assert weighted.valid and plain.valid
    assert abs(weighted.values["mass"] - Z_MASS) < 3 * weighted.errors["mass"]
    rows = generated_rows(path)
    w_in_range = []
    for r in rows:  # every event has one opposite-charge pair (signal only): its mass decides
        masses, _ = mumu_loop([r], [1.0])
        if sum(masses.sumw[70:110]) == 1.0:
            w_in_range.append(r["genWeight"])
    assert len(w_in_range) == int(counts.sum())
    effective = math.fsum(w_in_range) ** 2 / math.fsum(w * w for w in w_in_range)
    expected_ratio = math.sqrt(len(w_in_range) / effective)
    assert expected_ratio > 1.3  # the weights matter
    assert weighted.errors["mass"] / plain.errors["mass"] == pytest.approx(expected_ratio, rel=0.1)


def test_fit_on_real_data_reports_no_generated_values_and_no_pull(tmp_path):
    """2010 CMS Z -> mu mu: the PDG values are a reference there, not what was generated."""
    from test_real_data import ZMUMU_COLUMNS

    zmumu = str(wheel_data(WHEEL, DATA + "uproot-Zmumu.root"))
    out = {"histograms": str(tmp_path / "h.root"), "histograms_json": str(tmp_path / "h.json")}
    steps.reduce(inputs={"events": zmumu}, outputs=out, args={"tree": "events", "columns": ZMUMU_COLUMNS}, client=None)
    fit_out = {"fit": str(tmp_path / "fit.json"), "summary": str(tmp_path / "s.json"), "mass_plot": str(tmp_path / "m.png")}
    steps.fit_and_plot(inputs={"histograms": out["histograms_json"]}, outputs=fit_out, args={})
    fit = json.loads(Path(fit_out["fit"]).read_text())
    summary = json.loads(Path(fit_out["summary"]).read_text())
    assert fit["status"] == "ok" and "generated" not in fit and fit["reference_pdg"]["mass"] == 91.1876
    assert "mass_pull" not in summary["fit"] and summary["truth"] == {}
    assert 90.0 < fit["values"]["mass"] < 92.0  # real Z bosons


def test_adl_on_a_real_nanoaod_skim_runs_what_its_branches_allow():
    """The NanoAOD Drell-Yan skim (NanoAOD names, tree `tree`) has Jet_pt, MET_pt, Muon_pt/charge only: Q1, Q2
    and Q4 run and equal the loop, the others are skipped naming the missing branches."""
    skim = str(wheel_data(WHEEL, DATA + "uproot-small-dy-withoffsets.root"))
    infos = inspect_files([skim], "tree")
    spec, skipped = adl.processor_spec({i.path: i.branches for i in infos}, {}, "tree")
    assert spec.args["queries"] == ["q1", "q2", "q4"]
    assert skipped["q3"] == f"{skim} lacks Jet_eta" and "Electron_pt" in skipped["q8"]
    with uproot.open(skim) as file:
        rows = file["tree"].arrays(["Jet_pt", "MET_pt"], library="ak").tolist()
    met, jet_pt, met_2jets = Loop(100, 0.0, 200.0), Loop(100, 0.0, 200.0), Loop(100, 0.0, 200.0)
    for r in rows:
        met.fill(r["MET_pt"], 1.0)
        for p_t in r["Jet_pt"]:
            jet_pt.fill(p_t, 1.0)
        if sum(1 for p_t in r["Jet_pt"] if p_t > 40.0) >= 2:
            met_2jets.fill(r["MET_pt"], 1.0)
    run = run_processor([Sample("dy", (skim,), is_data=True, weight=None)], spec, chunk_entries=200)
    for name, loop in (("met", met), ("jet_pt", jet_pt), ("met_2jets40", met_2jets)):
        h = run.histograms[name]
        for syst in ("nominal", "jet_pt_up", "muon_pt_down"):
            if syst == "jet_pt_up" and name != "met":
                continue  # the jet scale moves jet pT: checked on the HZZ file
            assert h[{"dataset": "dy", "systematic": syst}].values().tolist() == loop.sumw, (name, syst)
    assert sum(jet_pt.sumw) > 500


def test_the_processor_reads_an_rntuple_as_its_ttree(tmp_path):
    """The same generated events as a TTree and as an RNTuple (3 clusters): identical ADL histograms."""
    from portaflow.cores.hep.generate import write_events_rntuple

    config = GeneratorConfig(events=2600, seed=81, signal_fraction=0.3, gen_weight=True)
    ttree, rntuple = str(tmp_path / "t.root"), str(tmp_path / "r.root")
    write_events_file(ttree, config, basket_entries=1000)
    write_events_rntuple(rntuple, config, cluster_entries=1000)
    spec = ProcessorSpec("portaflow.cores.hep.adl:process", ("Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass",
                                                             "Muon_charge", "Jet_pt", "MET_pt"),
                         {"queries": ["q1", "q2", "q4", "q5"]})
    runs = [run_processor([Sample("s", (path,), xsec=1.0)], spec, luminosity=1.0, chunk_entries=700)
            for path in (ttree, rntuple)]
    assert runs[1].samples["s"].sumw == runs[0].samples["s"].sumw and runs[0].samples["s"].negative > 0
    for name, h in runs[0].histograms.items():
        assert np.array_equal(runs[1].histograms[name].view(flow=True), h.view(flow=True)), name
    assert runs[0].histograms["dimuon_mass"][{"systematic": "nominal"}].values().sum() != 0
