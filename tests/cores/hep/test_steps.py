"""The workflow entry points end to end: generate -> reduce over Dask -> fit_and_plot, as portaflow calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import uproot

from portaflow.cores.hep import steps


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, dask_client):
    folder = tmp_path_factory.mktemp("hep_steps")
    events = []
    for index, compression in enumerate(["zlib", "lz4:1"]):
        path = folder / f"events_{index}.root"
        steps.generate(inputs={}, outputs={"events": str(path), "truth": str(folder / f"truth_{index}.json")},
                       args={"events": 20_000, "seed": 3, "file_index": index, "signal_fraction": 0.5,
                             "compression": compression, "background": False})
        events.append(str(path))
    hist_out = {"histograms": str(folder / "hists.root"), "histograms_json": str(folder / "hists.json")}
    steps.reduce(inputs={"events": events}, outputs=hist_out, args={"chunk_entries": 5000}, client=dask_client)
    fit_out = {name: str(folder / f"{name}{ext}") for name, ext in
               [("fit", ".json"), ("summary", ".json"), ("mass_plot", ".png"), ("met_plot", ".png")]}
    steps.fit_and_plot(inputs={"histograms": hist_out["histograms_json"]}, outputs=fit_out, args={})
    return folder, events, hist_out, fit_out


def test_generate_writes_a_ttree_and_its_truth(pipeline):
    folder, events, _, _ = pipeline
    truth = json.loads((folder / "truth_0.json").read_text())
    with uproot.open(events[0]) as file:
        assert file["Events"].classname == "TTree"
        assert file["Events"].num_entries == truth["events"] == 20_000
        assert repr(file.file.compression) == "ZLIB(1)"
    with uproot.open(events[1]) as file:
        assert repr(file.file.compression) == "LZ4(1)"


def test_reduce_writes_root_and_json_that_agree(pipeline):
    folder, _, hist_out, _ = pipeline
    doc = json.loads(Path(hist_out["histograms_json"]).read_text())
    truth = [json.loads((folder / f"truth_{i}.json").read_text()) for i in range(2)]
    assert doc["counts"]["events"] == 40_000
    assert doc["counts"]["events_zmumu"] == sum(t["signal_in_window"] for t in truth)
    assert doc["truth"]["signal_in_window"] == doc["counts"]["events_zmumu"]
    with uproot.open(hist_out["histograms"]) as file:
        assert set(file.keys(cycle=False)) == set(doc["histograms"]) | {"portaflow_truth"}
        assert json.loads(str(file["portaflow_truth"])) == doc["truth"]  # a fit from ROOT knows it is generated
        for name, h in doc["histograms"].items():
            th1 = file[name]
            assert th1.classname == "TH1D"
            assert th1.values().tolist() == [float(c) for c in h["counts"]]
            assert th1.variances().tolist() == h["variances"]
            assert th1.axis().edges().tolist() == h["edges"]
            assert th1.values(flow=True)[0] == h["underflow"] and th1.values(flow=True)[-1] == h["overflow"]
            assert len(h["edges"]) == len(h["counts"]) + 1


def test_fit_summary_and_plots(pipeline):
    _, _, _, fit_out = pipeline
    fit = json.loads(Path(fit_out["fit"]).read_text())
    summary = json.loads(Path(fit_out["summary"]).read_text())
    assert fit["status"] == "ok" and fit["valid"]
    assert abs(fit["values"]["mass"] - 91.1876) < 3 * fit["errors"]["mass"]
    assert summary["dimuon_peak_bin"] == [91.0, 92.0]
    assert summary["counts"]["events_zmumu"] == summary["truth"]["signal_in_window"]
    for name in ("mass_plot", "met_plot"):
        data = Path(fit_out[name]).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_outputs_are_deterministic(pipeline, tmp_path, dask_client):
    """Same inputs and args -> byte-identical JSON and PNG products (no timestamps anywhere)."""
    folder, events, hist_out, fit_out = pipeline
    again = {"histograms": str(tmp_path / "h.root"), "histograms_json": str(tmp_path / "h.json")}
    steps.reduce(inputs={"events": events}, outputs=again, args={"chunk_entries": 7000, "partition_entries": 7000},
                 client=dask_client)
    assert Path(again["histograms_json"]).read_bytes() == Path(hist_out["histograms_json"]).read_bytes()
    fit_again = {name: str(tmp_path / Path(path).name) for name, path in fit_out.items()}
    steps.fit_and_plot(inputs={"histograms": again["histograms"]}, outputs=fit_again, args={})  # from the ROOT file
    for name in ("fit", "mass_plot", "met_plot"):
        assert Path(fit_again[name]).read_bytes() == Path(fit_out[name]).read_bytes(), name


def test_unknown_args_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown args"):
        steps.generate(inputs={}, outputs={"events": str(tmp_path / "x.root")}, args={"event": 10})


def test_too_few_entries_give_an_unfitted_but_complete_result(tmp_path):
    path = tmp_path / "tiny.root"
    steps.generate(inputs={}, outputs={"events": str(path)}, args={"events": 50, "signal_fraction": 0.1})
    hists = {"histograms": str(tmp_path / "h.root"), "histograms_json": str(tmp_path / "h.json")}
    steps.reduce(inputs={"events": str(path)}, outputs=hists, args={}, client=None)
    outs = {name: str(tmp_path / f"{name}.out") for name in ("fit", "summary", "mass_plot")}
    steps.fit_and_plot(inputs={"histograms": hists["histograms_json"]}, outputs=outs, args={})
    fit = json.loads(Path(outs["fit"]).read_text())
    assert fit["status"].startswith("not fitted") and fit["valid"] is False
    assert Path(outs["mass_plot"]).read_bytes().startswith(b"\x89PNG")
