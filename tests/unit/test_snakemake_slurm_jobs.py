"""Which SLURM job ran which rule, read from Snakemake's log (what a failure report names)."""

from __future__ import annotations

from portaflow.engines.snakemake_engine import _slurm_jobs_by_rule

# As snakemake-executor-plugin-slurm 2.8 logs it when several jobs are ready at once: every rule block
# first, then one submission line per job (trimmed from a real run on the test cluster).
BATCH = """\
rule fine__i_1:
    output: fine/1.txt
    jobid: 2
    reason: Forced execution
rule broken:
    output: broken.txt
    jobid: 4
    reason: Forced execution
rule fine__i_0:
    output: fine/0.txt
    jobid: 1
    reason: Forced execution
Job 2 has been submitted with SLURM jobid 541 (log: .snakemake/slurm_logs/rule_fine__i_1/541.log).
Job 4 has been submitted with SLURM jobid 543 (log: .snakemake/slurm_logs/rule_broken/543.log).
Job 1 has been submitted with SLURM jobid 544 (log: .snakemake/slurm_logs/rule_fine__i_0/544.log).
Error in rule broken:
    message: SLURM-job '543' failed, SLURM status is: 'FAILED'.
    jobid: 4
"""


def test_jobs_submitted_together_map_to_their_own_rules():
    assert _slurm_jobs_by_rule(BATCH) == {"fine__i_1": "541", "broken": "543", "fine__i_0": "544"}


def test_a_retried_rule_maps_to_its_last_job():
    retry = "rule flaky:\n    jobid: 1\nJob 1 has been submitted with SLURM jobid 10 (log: x).\n" \
            "rule flaky:\n    jobid: 1\nJob 1 has been submitted with SLURM jobid 11 (log: y).\n"
    assert _slurm_jobs_by_rule(retry) == {"flaky": "11"}
