"""Issue 14: after `kill -9` of the driver, the rerun finds the killed run's jobs still on the scheduler by the run tag
and cancels them (waiting until the scheduler no longer lists them) before it submits anything.

Each adapter's `jobs_of_run` is run for real against stand-ins of the scheduler's own tools (squeue/scancel scripts
that keep a queue in a file; the stand-in Kubernetes API server) or its own parser (HTCondor's constraint through
classad2). The end-to-end proof on the SLURM test cluster is tests/slurm/test_fault_injection_slurm.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from portaflow.errors import PortaflowError
from portaflow.schedulers import scheduler_for
from portaflow.schedulers.base import run_tag, snakemake_jobname_prefix
from portaflow.spec.loading import load_site

RUN = "20260101-000000-snakemake-abcd"


def _tool(directory: Path, name: str, body: str) -> None:
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def slurm_queue(tmp_path, monkeypatch):
    """A queue file read by a stand-in squeue (`%i|%j|%k` lines) and emptied of cancelled ids by a stand-in scancel,
    which goes away only at the second squeue after scancel (SLURM ends a cancelled job asynchronously)."""
    queue, calls = tmp_path / "queue", tmp_path / "calls"
    _tool(tmp_path, "squeue", f'echo "squeue $*" >> {calls}\ncat {queue}\n'
                              f'if [ -f {tmp_path}/cancelled ]; then grep -v -F -f {tmp_path}/cancelled {queue} > {queue}.new; '
                              f'mv {queue}.new {queue}; fi\n')
    _tool(tmp_path, "scancel", f'echo "scancel $*" >> {calls}\nfor j in "$@"; do echo "$j|" >> {tmp_path}/cancelled; done\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return queue, calls


def test_slurm_finds_a_killed_runs_jobs_by_comment_and_by_snakemake_job_name(slurm_queue):
    queue, calls = slurm_queue
    queue.write_text("\n".join([
        f"101|parsl.htex_cpu.block-0|{run_tag(RUN)}",                       # a Parsl block
        f"102|{snakemake_jobname_prefix(RUN)}_0f3c-uuid|rule_a_wildcards_x",  # a Snakemake plugin job
        f"103|dask-worker|{run_tag(RUN)}",                                   # a Dask worker job of a step
        "104|parsl.htex_cpu.block-0|portaflow:20260101-000000-snakemake-abcdX",  # another run (its id extends this one)
        f"105|{snakemake_jobname_prefix(RUN)}X_0f3c|rule_b",                   # another run's prefix
        "106|interactive|",                                                 # someone else's job
    ]) + "\n")
    scheduler = scheduler_for("slurm")(load_site("slurm-local"))
    assert scheduler.jobs_of_run(RUN) == ["101", "102", "103"]
    assert scheduler.cancel_previous_run(RUN, wait_s=10, poll_s=0.01) == ["101", "102", "103"]
    lines = calls.read_text().splitlines()
    assert lines[0] == "squeue --me --noheader --format=%i|%j|%k"
    assert "scancel 101 102 103" in lines
    # cancel_previous_run returned only once squeue no longer listed them: the rerun submits after that
    assert lines[-1].startswith("squeue") and lines.index("scancel 101 102 103") < len(lines) - 1
    assert scheduler.jobs_of_run(RUN) == []
    assert [line.split("|")[0] for line in queue.read_text().splitlines()] == ["104", "105", "106"]


def test_slurm_refuses_to_go_on_while_a_cancelled_job_is_still_listed(tmp_path, monkeypatch):
    _tool(tmp_path, "squeue", f'echo "7|x|{run_tag(RUN)}"\n')
    _tool(tmp_path, "scancel", "true\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    scheduler = scheduler_for("slurm")(load_site("slurm-local"))
    with pytest.raises(PortaflowError, match=r"jobs 7 of the killed run .* still listed"):
        scheduler.cancel_previous_run(RUN, wait_s=0.2, poll_s=0.05)


def test_slurm_says_when_the_queue_cannot_be_listed(tmp_path, monkeypatch):
    _tool(tmp_path, "squeue", "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PortaflowError, match="could not list the SLURM queue"):
        scheduler_for("slurm")(load_site("slurm-local")).jobs_of_run(RUN)


def test_snakemake_on_slurm_names_its_jobs_after_the_run():
    """The plugin's own job-name rule (`^[A-Za-z0-9_-]{1,50}$`) holds for every run id portaflow writes."""
    import re

    from portaflow.driver import new_run_id

    for engine in ("parsl", "snakemake"):
        prefix = snakemake_jobname_prefix(new_run_id(engine))
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,50}", prefix), prefix
    assert snakemake_jobname_prefix("a b/c") == "portaflow-a-b-c"


def test_htcondor_constraint_selects_exactly_the_runs_jobs():
    """The constraint condor_q is given, parsed and evaluated by HTCondor's own ClassAd library: true for the run's
    jobs only, whatever quotes or operators a run id holds."""
    classad2 = pytest.importorskip("classad2")
    from portaflow.schedulers.htcondor import run_constraint

    for run_id in (RUN, 'a"b) || true || ("', "x\\"):
        expr = classad2.ExprTree(run_constraint(run_id))
        assert expr.eval(classad2.ClassAd({"PortaflowRun": run_id})) is True
        assert expr.eval(classad2.ClassAd({"PortaflowRun": run_id + "X"})) is False
        assert expr.eval(classad2.ClassAd({"PortaflowRun": "other"})) is False


def test_htcondor_lists_the_runs_jobs_with_condor_q(tmp_path, monkeypatch):
    pytest.importorskip("htcondor2")
    calls = tmp_path / "calls"
    _tool(tmp_path, "condor_q", f'echo "condor_q $*" >> {calls}\nprintf "41 0\\n41 1\\n"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    scheduler = scheduler_for("htcondor")(load_site("example-infn-htcondor"))
    assert scheduler.jobs_of_run(RUN) == ["41.0", "41.1"]
    assert calls.read_text().strip() == f'condor_q -constraint PortaflowRun == "{RUN}" -af ClusterId ProcId'


def test_kubernetes_lists_the_runs_jobs_and_pods_by_label(tmp_path, monkeypatch):
    """Over real HTTP (the stand-in API server): the run's Job and Pod are listed, another run's are not."""
    pytest.importorskip("kubernetes")
    from kubernetes import client

    from portaflow.schedulers.kubernetes import RUN_LABEL, label_safe

    from standin_kube import StandInKube

    with StandInKube(tmp_path / "kube") as kube:
        monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kube.kubeconfig))
        scheduler = scheduler_for("kubernetes")(load_site("example-cloud-gpu-k8s"))
        batch, core = scheduler.apis()
        namespace = scheduler.site.kubernetes.namespace

        def pod_spec():
            return client.V1PodSpec(restart_policy="Never", containers=[client.V1Container(name="c", image="x", command=["sleep", "60"])])

        def meta(name, run):
            return client.V1ObjectMeta(name=name, labels={RUN_LABEL: label_safe(run)})

        batch.create_namespaced_job(namespace, client.V1Job(metadata=meta("snakejob-a", RUN), spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(spec=pod_spec()))))
        core.create_namespaced_pod(namespace, client.V1Pod(metadata=meta("parsl-block-0", RUN), spec=pod_spec()))
        core.create_namespaced_pod(namespace, client.V1Pod(metadata=meta("other-run", "run-2"), spec=pod_spec()))
        listed = scheduler.jobs_of_run(RUN)
        assert listed[0] == "snakejob-a" and "parsl-block-0" in listed and "other-run" not in listed
        assert scheduler.cancel_previous_run(RUN, wait_s=30, poll_s=0.2) == listed
        assert scheduler.jobs_of_run(RUN) == []
        assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["other-run"]


def test_local_sites_leave_it_to_the_leftovers_module():
    assert scheduler_for("local")(load_site("local")).jobs_of_run(RUN) == []
