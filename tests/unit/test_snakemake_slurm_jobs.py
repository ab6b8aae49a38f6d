"""Which SLURM job ran which rule, read from Snakemake's log events (what a failure report names)."""

from __future__ import annotations

from portaflow.engines.snakemake_events import RunEvents, submitted_job
from portaflow.schedulers.htcondor import HTCondorScheduler
from portaflow.schedulers.kubernetes import KubernetesScheduler
from portaflow.schedulers.slurm import SlurmScheduler


def job_info(jobid: int, rule: str) -> dict:
    return {"event": "job_info", "jobid": jobid, "rule_name": rule, "log": [], "local": False}


def message(text: str) -> dict:
    return {"event": "message", "level": "INFO", "msg": text}


# As snakemake-executor-plugin-slurm 2.8 logs it when several jobs are ready at once: every job's JOB_INFO
# first, then one submission message per job.
BATCH = [
    job_info(2, "fine__i_1"),
    job_info(4, "broken"),
    job_info(1, "fine__i_0"),
    message("Job 2 has been submitted with SLURM jobid 541 (log: .snakemake/slurm_logs/rule_fine__i_1/541.log)."),
    message("Job 4 has been submitted with SLURM jobid 543 (log: .snakemake/slurm_logs/rule_broken/543.log)."),
    message("Job 1 has been submitted with SLURM jobid 544 (log: .snakemake/slurm_logs/rule_fine__i_0/544.log)."),
    {"event": "job_error", "jobid": 4, "rule_name": "broken", "rule_msg": "SLURM-job '543' failed, SLURM status is: 'FAILED'.",
     "log": [".snakemake/slurm_logs/rule_broken/543.log"], "aux": {"external_jobid": "543"}, "shellcmd": "exit 7"},
]


def applied(events: list[dict]) -> RunEvents:
    run = RunEvents(submission=SlurmScheduler.snakemake_submission)
    for event in events:
        run.apply(event)
    return run


def test_jobs_submitted_together_map_to_their_own_rules():
    run = applied(BATCH)
    assert run.job_of_rule == {"fine__i_1": "541", "broken": "543", "fine__i_0": "544"}
    assert run.external_jobs == ["541", "543", "544"]
    assert run.failures["broken"].external_jobid == "543"
    assert run.failures["broken"].logs == [".snakemake/slurm_logs/rule_broken/543.log"]


def test_a_retried_rule_maps_to_its_last_job():
    run = applied([job_info(1, "flaky"), message("Job 1 has been submitted with SLURM jobid 10 (log: x)."),
                   job_info(1, "flaky"), message("Job 1 has been submitted with SLURM jobid 11 (log: y).")])
    assert run.job_of_rule == {"flaky": "11"} and run.external_jobs == ["10", "11"]


def test_submissions_of_the_other_executor_plugins():
    condor, kube = HTCondorScheduler.snakemake_submission, KubernetesScheduler.snakemake_submission
    message = "Job 3 submitted to HTCondor Cluster ID 17 with batch name x\nThe logs of the HTCondor job are stored in y"
    assert submitted_job(message, condor) == (3, "17")
    assert submitted_job("Get status with: kubectl describe job snakejob-0f3c2a1e-9b7d-5e4f-8a6b-1c2d3e4f5a6b", kube) == (
        None, "snakejob-0f3c2a1e-9b7d-5e4f-8a6b-1c2d3e4f5a6b")
    assert submitted_job("Job 3 with HTCondor Cluster ID 17 was successful.", condor) is None
    assert submitted_job("Job 3 submitted to HTCondor Cluster ID 17 with batch name x", None) is None  # the local executor submits nothing
