"""Issue 16: multi-cluster SLURM sites (KU Leuven wICE beside Genius, UPPMAX Snowy): a partition's `clusters` reaches
submission in both engines (Parsl's SlurmProvider `clusters`, which its squeue/sacct/scancel use too; the Snakemake
plugin's `clusters` resource), portaflow's own cancel asks each cluster, and `--clusters` in extra_directives (handled
nowhere before) is refused at its line."""

from __future__ import annotations

import os
import stat

import pytest

from portaflow.errors import InputError, SpecError
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.schedulers.slurm.parsl import render_blocks, slurm_provider
from portaflow.schedulers.slurm.snakemake import rule_resources
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

from testlib import run_portaflow

WICE = """\
name: vsc
scheduler: slurm
account: lp_proj
partitions:
  batch: {max_walltime: 3d, cores_per_node: 36, memory_per_node: 180GB, default: true}
  wice-batch: {slurm_partition: batch, clusters: wice, max_walltime: 3d, cores_per_node: 72, memory_per_node: 240GB, min_cores: 40}
  wice-gpu: {slurm_partition: gpu_a100, clusters: wice, max_walltime: 3d, cores_per_node: 64, memory_per_node: 480GB, gpus_per_node: 4}
"""


def _context(write, tmp_path, text: str = WICE):
    loaded = load_site(str(write("site.yaml", text)), environ={})
    adapter = adapter_for(loaded)
    adapter.check()
    steps = {"small": {"command": "true", "outputs": {"o": "a"}, "resources": {"cores": 4}},
             "gpu": {"command": "true", "outputs": {"o": "b"}, "resources": {"cores": 8, "gpus": 1}}}
    plan = make_plan(Workflow.model_validate({"name": "w", "steps": steps}), loaded.site)
    return RunContext(plan, loaded, tmp_path / "work", tmp_path / "run", plan.tasks, adapter)


def test_both_engines_submit_to_the_partitions_cluster(write, tmp_path):
    ctx = _context(write, tmp_path)
    small, gpu = ctx.tasks
    assert (small.partition, gpu.partition) == ("batch", "wice-gpu")
    scheduler = ctx.scheduler
    assert "--clusters=wice" in scheduler.directives(gpu.resources, gpu.partition)
    assert not any(d.startswith("--clusters") for d in scheduler.directives(small.resources, small.partition))
    # Parsl: the provider's own `clusters` (its sbatch, squeue, sacct and scancel name it), written once in the script
    assert slurm_provider(ctx, "g", [gpu]).clusters == "wice" and slurm_provider(ctx, "s", [small]).clusters is None
    [script] = render_blocks(ctx, {"g": [gpu]}, tmp_path / "jobs")
    assert [line for line in script.read_text().splitlines() if "clusters" in line] == ["#SBATCH --clusters=wice"]
    # Snakemake: the plugin's `clusters` resource (it writes --clusters and cancels there)
    assert rule_resources(scheduler, gpu)["clusters"] == "wice" and "clusters" not in rule_resources(scheduler, small)


@pytest.mark.parametrize("directive", ["--clusters=wice", "-M wice", "-Mwice", "--cluster=wice"])
def test_clusters_in_extra_directives_is_refused_at_its_line(write, tmp_path, directive):
    with pytest.raises(SpecError, match=r"site.yaml:8:.*portaflow manages"):
        _context(write, tmp_path, WICE + f"extra_directives: [{directive!r}]\n")


def test_validate_refuses_it_with_exit_2(write):
    site = write("site.yaml", WICE + "extra_directives: ['-M wice']\n")
    result = run_portaflow("validate", str(site))
    assert result.returncode == 2 and "site.yaml:8:" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_squeue_status_with_clusters_is_refused(write, tmp_path):
    with pytest.raises(SpecError, match="sees only the local cluster"):
        _context(write, tmp_path, WICE + "slurm: {status_command: squeue}\n")


def test_snakemake_without_accounting_cannot_follow_other_clusters(write, tmp_path, monkeypatch):
    ctx = _context(write, tmp_path)
    monkeypatch.setattr(type(ctx.scheduler), "accounting_available", lambda self: False)
    with pytest.raises(InputError, match="only through sacct"):
        ctx.scheduler.snakemake_run_profile(ctx, {})


def test_other_schedulers_refuse_a_partitions_clusters(write):
    site = write("site.yaml", "name: p\nscheduler: htcondor\npartitions:\n  vanilla: {max_walltime: 1d, cores_per_node: 8, "
                              "memory_per_node: 16GB, clusters: wice}\n")
    workflow = write("w.yaml", "name: w\nsteps:\n  s: {command: 'true', outputs: {o: o}}\n")
    result = run_portaflow("validate", str(workflow), "--site", str(site))
    assert result.returncode == 2 and "do not apply a partition's own clusters" in result.stderr, result.stderr


def test_cancel_asks_each_cluster(write, tmp_path, monkeypatch):
    """The real cancel path against stand-in squeue/scancel: a plain squeue would not list wice's jobs (the run was left
    running there); each cluster is listed and cancelled with --clusters."""
    calls = tmp_path / "calls"
    squeue = (f"#!/bin/sh\necho \"squeue $*\" >> {calls}\n"
              "case \"$*\" in *--clusters=wice*) printf 'CLUSTER: wice\\n77|job|portaflow:r1\\n78|job|other\\n';;\n"
              "*) printf '77|job|portaflow:r0\\n5|job|x\\n';; esac\n")
    (tmp_path / "squeue").write_text(squeue)
    (tmp_path / "scancel").write_text(f"#!/bin/sh\necho \"scancel $*\" >> {calls}\n")
    for tool in ("squeue", "scancel"):
        (tmp_path / tool).chmod(0o755 | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    text = WICE.replace("  batch: {max_walltime", "  batch: {clusters: genius, max_walltime")
    scheduler = adapter_for(load_site(str(write("site.yaml", text)), environ={}))
    assert scheduler.cancel_run("r1", ["5"]) == ["5", "77"]  # 5: a job id portaflow recorded; 77 on wice: the run's comment
    assert calls.read_text().splitlines() == [
        "squeue --clusters=genius --me --noheader --format=%i|%j|%k", "scancel --clusters=genius 5",
        "squeue --clusters=wice --me --noheader --format=%i|%j|%k", "scancel --clusters=wice 77"]
