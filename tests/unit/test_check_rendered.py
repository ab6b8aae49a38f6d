"""Each scheduler's check of rendered files (what the portability matrix runs on sites it cannot reach):
the shipped golden renders pass it, and a broken copy of each is caught."""

from __future__ import annotations

import shutil

import pytest
import yaml

from portaflow.schedulers import scheduler_for
from portaflow.spec.loading import load_site

from testlib import ROOT

GOLDEN = ROOT / "tests" / "golden"


def checker(site: str):
    loaded = load_site(site, {"account": "x"} if "lumi" in site else {})
    return scheduler_for(loaded.site.scheduler)(loaded)


def test_htcondor_descriptions_are_parsed_and_keys_checked(tmp_path):
    pytest.importorskip("htcondor2")
    good = sorted((GOLDEN / "wordfreq--example-cern-htcondor--snakemake" / "jobs").glob("*.sub"))
    check = checker("example-cern-htcondor")
    assert good and check.check_rendered(good) == []
    misspelt = tmp_path / "misspelt.sub"
    misspelt.write_text("transfer_input_file = a.txt\n" + good[0].read_text())  # the command is transfer_input_files
    assert check.check_rendered([misspelt]) == ["misspelt.sub: not documented submit commands: transfer_input_file"]


def test_kubernetes_manifests_are_validated(tmp_path):
    pytest.importorskip("kubernetes_validate")
    good = sorted((GOLDEN / "resources--example-egi-cloud-k8s--parsl" / "pods").glob("*.yaml"))
    check = checker("example-egi-cloud-k8s")
    assert good and check.check_rendered(good) == []
    pod = next(yaml.safe_load_all(good[0].read_text()))
    pod["spec"]["containers"][0]["resourcez"] = {}
    pod["metadata"]["name"] = "Not_A_DNS_Name"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(pod))
    problems = check.check_rendered([bad])
    assert any("metadata.name 'Not_A_DNS_Name'" in p for p in problems)
    assert any("strict" in p and "resourcez" in p for p in problems), problems


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="sbatch is not installed (tests/slurm/cluster.sh up installs it)")
def test_slurm_job_scripts_are_parsed_by_sbatch(tmp_path):
    good = sorted((GOLDEN / "resources--example-lumi-g--parsl" / "jobs").glob("*.sbatch"))
    check = checker("example-lumi-g")
    assert good and check.check_rendered(good) == []
    bad = tmp_path / "bad.sbatch"
    bad.write_text(good[0].read_text().replace("#SBATCH --time=", "#SBATCH --time=soon-", 1))
    [problem] = check.check_rendered([bad])
    assert problem.startswith("bad.sbatch: sbatch rejects its options:")


def test_unreachable_schedulers_say_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no condor_submit, no sbatch
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert checker("example-cern-htcondor").connection_problems() == [
        "site example-cern-htcondor uses HTCondor but condor_submit and condor_q are not on PATH"]
    assert checker("slurm-local").connection_problems() == ["site slurm-local uses SLURM but sbatch is not on PATH"]
    [problem] = checker("example-egi-cloud-k8s").connection_problems()
    assert problem.startswith("site example-egi-cloud-k8s: no Kubernetes configuration: set KUBECONFIG")
    assert checker("local").connection_problems() == []
