"""SLURM: a task's request as sbatch options, following the profile's memory and GPU rules."""

from __future__ import annotations

import math
import shlex
import shutil
import subprocess
from pathlib import Path

from portaflow.plan.model import TaskResources
from portaflow.schedulers.base import Scheduler
from portaflow.units import format_walltime


class SlurmScheduler(Scheduler):
    name = "slurm"
    managed_flags = frozenset({
        "--partition", "-p", "--account", "-A", "--qos", "-q", "--time", "-t", "--mem", "--mem-per-cpu",
        "--mem-per-gpu", "--gres", "--gpus", "-G", "--gpus-per-node", "--gpus-per-task", "--cpus-per-task", "-c",
        "--nodes", "-N", "--ntasks", "-n", "--job-name", "-J", "--output", "-o", "--error", "-e",
        "--constraint", "-C", "--reservation", "--comment", "--export", "--parsable",
    })

    def directives(self, request: TaskResources, partition: str) -> list[str]:
        """sbatch options in a stable order: where, who, how long, how big, then the admin's extras."""
        site = self.site
        part = site.partitions[partition]
        out = [f"--partition={partition}"]
        if site.account:
            out.append(f"--account={site.account}")
        if site.slurm.qos:
            out.append(f"--qos={site.slurm.qos}")
        if site.slurm.reservation:
            out.append(f"--reservation={site.slurm.reservation}")
        constraints = [c for c in (site.slurm.constraint, part.constraint) if c]
        if constraints:
            out.append("--constraint=" + "&".join(f"({c})" if "|" in c else c for c in constraints))
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
            return [f"--mem-per-cpu={math.ceil(request.memory_mib / request.cores)}M"]
        return []

    def gpu_directives(self, request: TaskResources) -> list[str]:
        if not request.gpus:
            return []
        if request.gpu_model:
            return [self.site.slurm.gpu_model_syntax.format(n=request.gpus, model=request.gpu_model)]
        return [self.site.slurm.gpu_syntax.format(n=request.gpus)]

    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """scancel the run's jobs: those portaflow recorded, and those carrying the run's comment.

        Why both: Snakemake's SLURM plugin sets its own --comment (so its job ids come from its log),
        and Parsl may have a block queued that it has not reported yet (found by the comment).
        One squeue call lists the queue; one scancel call cancels.
        """
        queue = subprocess.run(["squeue", "--noheader", "--format=%i|%k"], capture_output=True, text=True, timeout=60)
        if queue.returncode != 0:
            return []
        mine = []
        for line in queue.stdout.splitlines():
            job_id, _, comment = line.partition("|")
            if job_id in known_jobs or comment == f"portaflow:{run_id}":
                mine.append(job_id)
        if mine:
            subprocess.run(["scancel", *mine], capture_output=True, timeout=60)
        return mine

    def connection_problems(self) -> list[str]:
        if shutil.which("sbatch") is None:
            return [f"site {self.site.name} uses SLURM but sbatch is not on PATH"]
        result = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            return [f"site {self.site.name}: SLURM does not answer (sinfo: {result.stderr.strip()})"]
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
            result = subprocess.run(["sbatch", *options, "--usage"], capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                problems.append(f"{script.name}: sbatch rejects its options: {result.stderr.strip().splitlines()[0]}")
        return problems

    def accounting_available(self) -> bool:
        """Whether sacct answers here. Why ask: without accounting, tools that poll with sacct wait
        forever (Snakemake's SLURM plugin does); squeue works either way."""
        try:
            probe = subprocess.run(["sacct", "--noheader", "-X", "--format=JobID", "-j", "1"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return probe.returncode == 0

