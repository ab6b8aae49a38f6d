"""SLURM: a task's request as sbatch options, following the profile's memory and GPU rules; SlurmProvider for
Parsl (schedulers/slurm/parsl.py), the slurm executor plugin for Snakemake (schedulers/slurm/snakemake.py),
dask-jobqueue's SLURMJob for Dask workers (runtime/dask_jobs.py), squeue/scancel/sacct for the rest.

Each rule (constraint, memory rounding, GPU request, walltime) is one method here that both engines call,
so Parsl's job scripts and the Snakemake plugin's sbatch line ask for the same job.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.commands import CommandError, run_command
from portaflow.plan.model import Task, TaskResources
from portaflow.schedulers.base import Scheduler, run_tag
from portaflow.units import format_walltime

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

log = logging.getLogger(__name__)


class SlurmScheduler(Scheduler):
    name = "slurm"
    snakemake_executor = "slurm"
    snakemake_submission = re.compile(r"^Job (?P<job>\d+) has been submitted with SLURM jobid (?P<id>\d+)")
    """snakemake-executor-plugin-slurm 2.8.0: "Job 4 has been submitted with SLURM jobid 543 (log: ...)." (array jobs,
    which portaflow does not use, are reported in another message)."""
    snakemake_failure_names_job = True
    managed_flags = frozenset({
        "--partition", "-p", "--account", "-A", "--qos", "-q", "--time", "-t", "--mem", "--mem-per-cpu",
        "--mem-per-gpu", "--gres", "--gpus", "-G", "--gpus-per-node", "--gpus-per-task", "--cpus-per-task", "-c",
        "--nodes", "-N", "--ntasks", "-n", "--job-name", "-J", "--output", "-o", "--error", "-e",
        "--constraint", "-C", "--reservation", "--comment", "--export", "--parsable",
    })

    def directives(self, request: TaskResources, partition: str) -> list[str]:
        """sbatch options in a stable order: where, who, how long, how big, then the admin's extras."""
        site = self.site
        out = [f"--partition={partition}"]
        if site.account:
            out.append(f"--account={site.account}")
        if site.slurm.qos:
            out.append(f"--qos={site.slurm.qos}")
        if site.slurm.reservation:
            out.append(f"--reservation={site.slurm.reservation}")
        constraint = self.constraint(partition)
        if constraint:
            out.append(f"--constraint={constraint}")
        out.append(f"--time={format_walltime(request.walltime_s)}")
        out.append(f"--nodes={request.nodes}")
        out.append("--ntasks=1")
        out.append(f"--cpus-per-task={request.cores}")
        out.extend(self.memory_directives(request))
        out.extend(self.gpu_directives(request))
        out.extend(site.extra_directives)
        return out

    def memory_directives(self, request: TaskResources) -> list[str]:
        """--mem (per node) or --mem-per-cpu, rounded up so the job never gets less than asked."""
        rule = self.site.slurm.memory_rule
        if rule == "per_node":
            return [f"--mem={request.memory_mib}M"]
        if rule == "per_cpu":
            return [f"--mem-per-cpu={self.memory_per_cpu_mib(request)}M"]
        return []

    @staticmethod
    def memory_per_cpu_mib(request: TaskResources) -> int:
        """--mem-per-cpu for a request: rounded up, so cores x this is never less than the memory asked for."""
        return math.ceil(request.memory_mib / request.cores)

    def constraint(self, partition: str) -> str | None:
        """The site's and the partition's --constraint, combined with AND; a part with OR is parenthesised
        (`(intel|amd)&ib`), since in SLURM's syntax AND binds tighter than OR."""
        parts = [c for c in (self.site.slurm.constraint, self.site.partitions[partition].constraint) if c]
        if not parts:
            return None
        return "&".join(f"({c})" if "|" in c else c for c in parts)

    def gpu_directives(self, request: TaskResources) -> list[str]:
        if not request.gpus:
            return []
        if request.gpu_model:
            return [self.site.slurm.gpu_model_syntax.format(n=request.gpus, model=request.gpu_model)]
        return [self.site.slurm.gpu_syntax.format(n=request.gpus)]

    @classmethod
    def flag_name(cls, directive: str) -> str:
        """'#SBATCH --mem=4G' and '--mem=4G' -> '--mem'; '-p gpu' -> '-p'."""
        text = directive.strip()
        text = text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text
        return super().flag_name(text)

    # -- engines -----------------------------------------------------------------------------------
    def parsl_provider(self, ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> Any:
        from portaflow.schedulers.slurm.parsl import slurm_provider

        return slurm_provider(ctx, label, tasks)

    def render_parsl_blocks(self, ctx: RunContext, groups: dict[str, list[Task]], out_dir: Path) -> list[Path]:
        from portaflow.schedulers.slurm.parsl import render_blocks

        return render_blocks(ctx, groups, out_dir / "jobs")

    def snakemake_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        from portaflow.schedulers.slurm.snakemake import rule_resources

        return rule_resources(self, task)

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        from portaflow.schedulers.slurm.snakemake import executor_profile

        return executor_profile(self, ctx)

    def snakemake_run_profile(self, ctx: RunContext, profile: dict[str, Any]) -> dict[str, Any]:
        """`status_command: auto` decided against this cluster: squeue when sacct does not answer (the plugin
        would otherwise wait forever for accounting records)."""
        if self.site.slurm.status_command == "auto" and not self.accounting_available():
            return {**profile, "slurm-status-command": "squeue"}
        return profile

    def dask_worker_settings(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """Each worker kind's request as sbatch options (the same directives as every job), for dask-jobqueue's
        SLURMJob in runtime/dask_jobs.py, started from inside the step's job."""
        dask = task.dask
        assert dask is not None
        # The Dask scheduler runs in the step's job, on a compute node: `network.address` (the driver's) does not
        # apply there. It listens on the node's address toward the host the job was submitted from (expanded in
        # the job), or on `network.interface`'s (addresses.choose_address).
        settings: dict[str, Any] = {"cluster": "portaflow.runtime.dask_jobs:slurm_cluster",
                                    "interface": self.site.network.interface, "peers": ["$SLURM_SUBMIT_HOST"]}
        for kind in ("cpu", "gpu"):
            request, partition = getattr(dask, f"{kind}_worker"), getattr(dask, f"{kind}_worker_partition")
            settings[f"{kind}_worker"] = request.__dict__ if request else None
            settings[f"{kind}_worker_directives"] = (
                self.directives(request, partition) + [f"--comment={run_tag(ctx.run_id)}"] if request else [])
        return settings

    def worker_hosts(self, ctx: RunContext, tasks: list[Task]) -> list[str]:
        """The NodeAddr of the first few nodes of the tasks' partitions (`sinfo`): the driver's route toward them
        gives the address they reach it at. Empty (logged) when sinfo does not answer."""
        partitions = ",".join(sorted({t.partition for t in tasks}))
        try:
            listing = run_command(["sinfo", "--noheader", "--Node", f"--partition={partitions}", "--format=%o"], timeout=30)
        except CommandError as exc:
            log.warning("could not list the nodes of partition(s) %s to choose the driver's address: %s", partitions, exc)
            return []
        return list(dict.fromkeys(listing.stdout.split()))[:3]

    # -- the world ---------------------------------------------------------------------------------
    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """scancel the run's jobs: those portaflow recorded, and those carrying the run's comment.

        Why both: Snakemake's SLURM plugin sets its own --comment (so its job ids come from its log),
        and Parsl may have a block queued that it has not reported yet (found by the comment).
        One squeue call lists the queue; one scancel call cancels. A failure of either is logged with
        what could not be cancelled, and the ids that were cancelled are returned.
        """
        try:
            queue = run_command(["squeue", "--noheader", "--format=%i|%k"])
        except CommandError as exc:
            log.error("could not list the queue to cancel run %s (jobs %s may still run): %s", run_id, " ".join(known_jobs) or "-", exc)
            return []
        mine = []
        for line in queue.stdout.splitlines():
            job_id, _, comment = line.partition("|")
            if job_id in known_jobs or comment == run_tag(run_id):
                mine.append(job_id)
        if not mine:
            return []
        try:
            run_command(["scancel", *mine])
        except CommandError as exc:
            log.error("scancel could not cancel every job of run %s (%s): %s", run_id, " ".join(mine), exc)
        return mine

    def connection_problems(self) -> list[str]:
        if shutil.which("sbatch") is None:
            return [f"site {self.site.name} uses SLURM but sbatch is not on PATH"]
        try:
            run_command(["sinfo", "--noheader", "--format=%P"], timeout=30)
        except CommandError as exc:
            return [f"site {self.site.name}: SLURM does not answer (sinfo: {exc.stderr.strip() or exc.reason})"]
        return []

    def check_rendered(self, files: list[Path]) -> list[str]:
        """Each job script's `#SBATCH` options, parsed by this machine's own sbatch (`sbatch OPTIONS --usage`
        parses every option and value, then prints usage without submitting). Nothing to check without sbatch."""
        if shutil.which("sbatch") is None:
            return []
        problems = []
        for script in (f for f in files if f.suffix == ".sbatch"):
            options = [word for line in script.read_text().splitlines() if line.startswith("#SBATCH")
                       for word in shlex.split(line[len("#SBATCH"):])]
            result = run_command(["sbatch", *options, "--usage"], check=False, timeout=30)
            if result.returncode != 0:
                problems.append(f"{script.name}: sbatch rejects its options: {result.stderr.strip().splitlines()[0]}")
        return problems

    def accounting_available(self) -> bool:
        """Whether sacct answers here. Why ask: without accounting, tools that poll with sacct wait
        forever (Snakemake's SLURM plugin does); squeue works either way."""
        try:
            probe = run_command(["sacct", "--noheader", "-X", "--format=JobID", "-j", "1"], check=False, timeout=30)
        except CommandError:
            return False
        return probe.returncode == 0
