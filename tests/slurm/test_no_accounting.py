"""Without accounting (sacct failing: no slurmdbd answers) runs still finish on both engines: status comes
from squeue.

Where sacct fails is the login node, so that is where the test takes accounting away: portaflow and everything it
starts read a copy of the cluster's configuration (`SLURM_CONF`) whose slurmdbd port refuses connections. sbatch,
squeue and scancel still reach the real slurmctld; sacct and sacctmgr fail exactly as they do when slurmdbd is down
("Connection refused"). Other tests keep their accounting, so this one needs no exclusive hold on the cluster
(stopping slurmdbd for everyone did, and every other SLURM test waited for it). A cluster started with
`cluster.sh up --no-accounting` runs the same test with the real configuration.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from testlib import WORKFLOWS, start_portaflow

ENGINES = ("parsl", "snakemake")


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then released: connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_accounting_env(slurm_cluster, slurm_accounting, tmp_path) -> dict[str, str]:
    if not slurm_accounting:
        return {}  # the cluster itself runs without accounting (`up --no-accounting`)
    conf_dir = tmp_path / "slurm-conf"
    real = Path(subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True, timeout=30)
                .stdout.split("SLURM_CONF", 1)[1].split("=", 1)[1].split()[0])
    shutil.copytree(real.parent, conf_dir)
    lines = (conf_dir / "slurm.conf").read_text().splitlines()
    port = _refused_port()
    changed = [f"AccountingStoragePort={port}" if line.startswith("AccountingStoragePort=") else line for line in lines]
    assert changed != lines, "the cluster's slurm.conf names no AccountingStoragePort"
    (conf_dir / "slurm.conf").write_text("\n".join(changed) + "\n")
    env = {"SLURM_CONF": str(conf_dir / "slurm.conf")}
    sacct = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=60, env=env)
    assert sacct.returncode != 0 and "Connection refused" in sacct.stderr, sacct
    assert subprocess.run(["squeue", "--noheader"], capture_output=True, timeout=30, env=env).returncode == 0
    return env


def test_runs_finish_without_accounting(no_accounting_env, tmp_path):
    """Both engines at once (each a few jobs of wordfreq), each on its own work directory."""
    workflow = str(WORKFLOWS / "examples" / "wordfreq.yaml")
    procs = {engine: start_portaflow("run", workflow, "--site", "slurm-local", "--engine", engine, "--workdir", str(tmp_path / engine),
                                     "--param", "shards=1", env=no_accounting_env) for engine in ENGINES}
    for engine, proc in procs.items():
        out, err = proc.communicate(timeout=420)
        assert proc.returncode == 0, (engine, out + err)
        assert (tmp_path / engine / "results" / "top_words.json").exists()
    config = (tmp_path / "snakemake" / ".portaflow" / "runs" / "latest" / "snakemake" / "profile" / "config.yaml").read_text()
    assert "slurm-status-command: squeue" in config
