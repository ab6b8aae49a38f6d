"""The synthetic NanoAOD-like files: real TTrees, the expected branches, deterministic, truth consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot

from portaflow.cores.hep.generate import GeneratorConfig, compression_from_name, generate_events, read_truth, write_events_file

NANOAOD_TYPES = {
    "run": "uint32_t", "luminosityBlock": "uint32_t", "event": "uint64_t",
    "nMuon": "int32_t", "Muon_pt": "float[]", "Muon_eta": "float[]", "Muon_phi": "float[]", "Muon_mass": "float[]",
    "Muon_charge": "int32_t[]", "nJet": "int32_t", "Jet_pt": "float[]", "Jet_eta": "float[]", "Jet_phi": "float[]",
    "Jet_mass": "float[]", "MET_pt": "float", "MET_phi": "float",
}


def test_files_are_ttrees_with_nanoaod_branches(mixed_dataset):
    paths, truths = mixed_dataset
    for path, truth, expected_compression in zip(paths, truths, ["ZLIB(1)", "LZ4(1)", "ZLIB(6)"], strict=True):
        with uproot.open(path) as file:
            tree = file["Events"]
            assert tree.classname == "TTree"  # not an RNTuple
            assert tree.typenames() == NANOAOD_TYPES
            assert repr(file.file.compression) == expected_compression
            assert len(tree.common_entry_offsets()) > 2  # several baskets
            arrays = tree.arrays(["nMuon", "Muon_pt", "nJet", "Jet_pt", "event"], library="ak")
        assert arrays["nMuon"].tolist() == [len(x) for x in arrays["Muon_pt"].tolist()]
        assert int(np.sum(arrays["nMuon"])) == truth.muons
        assert int(np.sum(arrays["nJet"])) == truth.jets
        assert tree.num_entries == truth.events
        assert read_truth(path)["signal_in_window"] == truth.signal_in_window
        assert len(set(arrays["event"].tolist())) == truth.events  # event numbers are unique


def test_muons_sorted_by_pt_and_charges_are_unit(mixed_dataset):
    with uproot.open(mixed_dataset[0][0]) as file:
        muons = file["Events"].arrays(["Muon_pt", "Muon_charge"], library="ak").tolist()
    for event in muons:
        assert event["Muon_pt"] == sorted(event["Muon_pt"], reverse=True)
        assert all(q in (-1, 1) for q in event["Muon_charge"])


def test_same_seed_and_index_same_events_other_index_other_events():
    config = GeneratorConfig(events=2000, seed=7, file_index=3)
    first, truth_a = generate_events(config)
    again, truth_b = generate_events(config)
    other, _ = generate_events(GeneratorConfig(events=2000, seed=7, file_index=4))
    for name in first:
        assert first[name].tolist() == again[name].tolist(), name
    assert truth_a == truth_b
    assert first["Muon"].pt.tolist() != other["Muon"].pt.tolist()
    assert other["event"][0] == 4 * 2000 + 1


def test_without_background_only_z_muons_and_no_jets():
    branches, truth = generate_events(GeneratorConfig(events=3000, seed=2, signal_fraction=0.4, background=False))
    n_muon = np.asarray([len(x) for x in branches["Muon"].pt.tolist()])
    assert set(n_muon.tolist()) == {0, 2}
    assert int((n_muon == 2).sum()) == truth.signal_events
    assert 0.35 < truth.signal_events / 3000 < 0.45
    assert sum(len(x) for x in branches["Jet"].pt.tolist()) == 0
    charges = branches["Muon"].charge.tolist()
    assert all(sum(q) == 0 for q in charges if q)
    assert truth.signal_in_window <= truth.signal_events


def test_truth_is_stored_in_the_file_as_json(tmp_path):
    path = tmp_path / "t.root"
    truth = write_events_file(path, GeneratorConfig(events=100, seed=1), compression="none")
    stored = read_truth(path)
    assert stored == json.loads(truth.to_json())
    assert stored["config"]["seed"] == 1


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError, match="unknown compression"):
        compression_from_name("brotli")
