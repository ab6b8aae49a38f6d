"""Without accounting (slurmdbd down, sacct failing) runs still finish on both engines: status comes
from squeue. The test turns accounting off and back on; the cluster is shared, so it runs alone."""

from __future__ import annotations

import subprocess

import pytest

from testlib import ROOT, WORKFLOWS, run_portaflow

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"

pytestmark = pytest.mark.slurm_exclusive  # accounting off is off for every test on the cluster


@pytest.fixture
def accounting_off(slurm_cluster, slurm_accounting):
    if not slurm_accounting:
        yield  # already without accounting (cluster started with --no-accounting)
        return
    subprocess.run(["bash", str(CLUSTER), "accounting", "off"], check=True, capture_output=True, timeout=120)
    try:
        assert subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True).returncode != 0
        yield
    finally:
        subprocess.run(["bash", str(CLUSTER), "accounting", "on"], check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_runs_finish_without_accounting(accounting_off, tmp_path, engine):
    result = run_portaflow("run", str(WORKFLOWS / "examples" / "wordfreq.yaml"), "--site", "slurm-local", "--engine", engine,
                           "--workdir", str(tmp_path), "--param", "shards=1", timeout=420)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "results" / "top_words.json").exists()
    if engine == "snakemake":
        config = (tmp_path / ".portaflow" / "runs" / "latest" / "snakemake" / "profile" / "config.yaml").read_text()
        assert "slurm-status-command: squeue" in config
