"""The local 'scheduler': steps run as processes on this machine; a Parsl block is one process, not a job."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.commands import run_command
from portaflow.plan.model import Task, TaskResources
from portaflow.runtime.peak import ENTRY as PEAK_ENTRY
from portaflow.schedulers.base import PASSED, WRONG, ProbeJob, Scheduler, SiteFinding
from portaflow.schedulers.parsl_blocks import worker_init
from portaflow.units import describe_memory

GPU_LOCK_DIR = '"${XDG_RUNTIME_DIR:-/tmp}/portaflow-gpus-$(id -u)"'
"""Where a local task's shell locks the GPUs it uses (one file per device): machine-wide for the user, so that tasks
of every engine and every run on this machine share the devices without two using one at once."""


def gpu_claim_lines(gpus: int, devices: int) -> list[str]:
    """Shell lines that give a task `gpus` devices of the `devices` this machine has, none another task holds, and export
    them as CUDA_VISIBLE_DEVICES (the ids are those of an inherited CUDA_VISIBLE_DEVICES, else 0..devices-1).

    Why here and not by the engine: Parsl's HighThroughputExecutor pins each worker to one accelerator (a 2-GPU task
    saw one GPU) and Snakemake's local executor sets nothing (a task saw every GPU), so the two engines ran the same
    step differently. Each device is an flock held by the task's shell until it ends; a task takes all it needs or
    none and tries again a second later, so two tasks never wait for each other's devices."""
    ids = ",".join(str(i) for i in range(devices))
    return [
        f"pf_gpu_dir={GPU_LOCK_DIR}; mkdir -p \"$pf_gpu_dir\"",
        f'IFS=, read -ra pf_devices <<< "${{CUDA_VISIBLE_DEVICES:-{ids}}}"',
        "pf_claimed=(); pf_fds=()",
        f"while [ ${{#pf_claimed[@]}} -lt {gpus} ]; do",
        '  for pf_d in "${pf_devices[@]}"; do',
        f"    [ ${{#pf_claimed[@]}} -ge {gpus} ] && break",
        '    exec {pf_fd}>"$pf_gpu_dir/$pf_d.lock"',
        '    if flock -n "$pf_fd"; then pf_claimed+=("$pf_d"); pf_fds+=("$pf_fd"); else exec {pf_fd}>&-; fi',
        "  done",
        f"  if [ ${{#pf_claimed[@]}} -lt {gpus} ]; then",
        '    for pf_fd in "${pf_fds[@]}"; do exec {pf_fd}>&-; done',
        "    pf_claimed=(); pf_fds=(); sleep 1",
        "  fi",
        "done",
        'export CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${pf_claimed[*]}")',
    ]

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext


class LocalScheduler(Scheduler):
    name = "local"
    blocks_are_jobs = False
    parsl_threads = True  # each step is a process of its own anyway (a bash app); a worker pool would only add start-up

    def parsl_provider(self, ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> Any:
        """One block on this machine; its workers share the partition's cores (the executor sets how many)."""
        from parsl.providers import LocalProvider

        return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=worker_init(ctx))

    def parsl_executor_options(self, ctx: RunContext, tasks: list[Task]) -> dict[str, Any]:
        """One block, this machine: as many workers as the partition's node holds, each with the task's cores and GPUs.

        No `available_accelerators`: Parsl would pin each worker to one device whatever the task asks for; the task's
        shell claims its devices instead (`task_prologue`), as under Snakemake."""
        request = tasks[0].resources
        part = self.site.partitions[tasks[0].partition]
        fits = [part.cores_per_node // request.cores, part.memory_per_node // max(request.memory_mib, 1), self.site.polling.max_queued_jobs]
        if request.gpus:
            fits.append(part.gpus_per_node // request.gpus)
        return {"max_workers_per_node": max(1, min(fits)), "cores_per_worker": request.cores, "available_accelerators": []}

    def task_prologue(self, ctx: RunContext, task: Task) -> tuple[list[str], list[str]]:
        """A GPU task claims its devices on this machine and sees only them (CUDA_VISIBLE_DEVICES), under both engines."""
        if not task.resources.gpus:
            return [], []
        devices = self.site.partitions[task.partition].gpus_per_node
        return gpu_claim_lines(task.resources.gpus, devices), ["CUDA_VISIBLE_DEVICES"]

    def step_launcher(self, ctx: RunContext, task: Task) -> list[str]:
        """The step runs under `runtime.peak`, which notes its processes' peak resident memory in the task's usage note:
        on this machine no scheduler's accounting measures it (the report's memory efficiency). The driver's Python
        runs it: the machine's `python3` need not have portaflow for a shell step."""
        return [sys.executable, "-m", PEAK_ENTRY, str(ctx.usage_path(task)), "--"]

    def partition_hosts(self, partitions: list[str]) -> list[str]:
        """Workers are processes on this machine: loopback is right here."""
        return ["127.0.0.1"]

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        """Snakemake's local executor: this machine's size, GPUs included (so that it never starts more GPU tasks than
        there are devices; each task's shell then claims which ones), and how many tasks at once (each rule takes one
        `portaflow_tasks`)."""
        part = self.site.partitions[self.site.default_partition]
        resources = [f"mem_mb={part.memory_per_node}"] + ([f"gpu={part.gpus_per_node}"] if part.gpus_per_node else [])
        return {"cores": part.cores_per_node, "resources": [*resources, f"portaflow_tasks={self.site.polling.max_queued_jobs}"]}

    def snakemake_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        return {**super().snakemake_resources(ctx, task), "portaflow_tasks": 1}

    def compare_profile(self, partitions: list[str]) -> list[SiteFinding]:
        """Each partition's cores and memory against this machine's (its CPUs, its physical memory): the local site's
        one node. ('auto' reads them when the profile is loaded, so it passes.)"""
        cores = os.cpu_count() or 1
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        found = []
        for name in partitions:
            part = self.site.partitions[name]
            for what, field, promised, given, show in (
                    ("cores", "cores_per_node", part.cores_per_node, cores, str),
                    ("memory", "memory_per_node", part.memory_per_node, memory, describe_memory)):
                verdict = WRONG if promised > given else PASSED
                found.append(SiteFinding(f"partition {name}: {what} of this machine", verdict, f"partitions.{name}.{field}",
                                         show(promised), f"{show(given)} on this machine"))
        return found

    def probe_unavailable(self) -> str | None:
        return None

    def submit_probe(self, partition: str, request: TaskResources, script: Path, output: Path, tag: str) -> ProbeJob:
        """The probe as a process on this machine, run to its end here (it is bounded: its connection attempt times
        out), its output in `output`. There is no job id: the process's exit status stands in for one."""
        started = time.time()
        result = run_command(["bash", str(script)], check=False, timeout=120)
        output.write_text(result.stdout + result.stderr)
        return ProbeJob(partition, f"local (exit {result.returncode})", started)

    def shortcut_overrides(self, cores: int | None, jobs: int | None) -> dict[str, str]:
        """--cores N: every partition of this machine has N cores; --jobs N: at most N tasks at once (the local site's
        `polling.max_queued_jobs`, which Snakemake's local executor and Parsl's workers obey)."""
        out = {f"partitions.{name}.cores_per_node": str(cores) for name in self.site.partitions} if cores is not None else {}
        if jobs is not None:
            out["polling.max_queued_jobs"] = str(jobs)
        return out
