"""What every adapter's Parsl provider shares: the resource classes (one executor each), a block's size (how many at
once, how long: `block_sizing`), its shell set-up, and render's capture.

Rendering runs a provider's own submit() with a recording `execute_wait`, the one method through which
Parsl's ClusterProvider subclasses (SlurmProvider, CondorProvider) run sbatch or condor_submit: everything
before it (the job files) is Parsl's real work, so the rendered file is exactly what Parsl would hand over.
The recording is a subclass of the provider (`recording()`), not a patched instance.
Parsl itself is imported inside the functions: importing portaflow must not import Parsl.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.plan.model import Task
from portaflow.schedulers.base import max_jobs_at_once, partition_job_limits
from portaflow.schedulers.context import init_lines, module_lines
from portaflow.units import describe_walltime

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

_PARSL_TIMESTAMP = re.compile(r"(parsl\.[A-Za-z0-9_]+)\.\d+\.\d+")
"""Parsl names a block's job after its submit time (parsl.<label>.<seconds>.<fraction>)."""

ProviderFactory = Callable[["RunContext", str, list[Task], bool], Any]
"""(run context, executor label, the executor's tasks, offline) -> the executor's provider."""


def worker_init(ctx: RunContext, driver_path: bool = True, partition: str | None = None) -> str:
    """A block's shell set-up: the site's (and its partition's) modules and worker_init; without a worker_init of the
    site's own, the driver's Python environment first on PATH (Parsl finds its worker scripts there).
    `driver_path=False` where the block runs in an image holding its own environment (a Kubernetes pod)."""
    site = ctx.site
    lines = module_lines(site, partition) + init_lines(site, partition)
    if driver_path and not site.environment.worker_init:
        lines.append(driver_path_line())
    return "\n".join(lines)


def driver_path_line() -> str:
    """The driver's Python environment first on PATH: where a step's `python3` and portaflow's helpers are found on
    a machine that shares the driver's file system (a block's set-up; each task's shell where Parsl runs threads)."""
    return f"export PATH={Path(sys.executable).parent}:$PATH"


log = logging.getLogger(__name__)

BLOCK_MARGIN_S = 300
"""Added to a block that runs several tasks in sequence: the worker pool's start and each hand-over of a task."""
WORKER_START_S = 60
"""How long after its job starts a block's worker pool may begin counting its drain period (Parsl counts from there)."""


def resource_classes(tasks: list[Task], by_container: bool = False) -> dict[str, list[Task]]:
    """Group tasks by what they ask of the scheduler; each group becomes one Parsl executor.

    `by_container`: where the block is itself a container (a Kubernetes pod has one image), tasks
    in different containers need different blocks.
    """
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        r = task.resources
        label = f"{task.partition}_c{r.cores}_m{r.memory_mib}_g{r.gpus}"
        label += (f"_{r.gpu_model}" if r.gpu_model else "") + (f"_n{r.nodes}" if r.nodes > 1 else "")
        label += f"_{task.container or 'default'}" if by_container else ""
        groups.setdefault(re.sub(r"[^A-Za-z0-9_]", "_", label), []).append(task)
    return groups


def run_classes(ctx: RunContext) -> dict[str, list[Task]]:
    """The run's resource classes (by container too where a block is one image, e.g. a Kubernetes pod)."""
    return resource_classes(ctx.tasks, by_container=ctx.scheduler.parsl_blocks_hold_one_image())


@dataclass(frozen=True)
class BlockSizing:
    """How many blocks of one executor may exist at once and how long each is asked for."""

    max_blocks: int
    walltime_s: int
    drain_period_s: int | None
    """Seconds after a block's workers start when they stop taking tasks (Parsl's `drain_period`): no task starts
    that could not finish before the block's walltime. None where a block is sized for one task."""
    note: str
    """Why, in one line (render's Parsl config header, the run's log)."""


def block_sizing(ctx: RunContext, tasks: list[Task]) -> BlockSizing:
    """The one rule for a Parsl executor's blocks, on every scheduler (SLURM --time, HTCondor's runtime attribute,
    Kubernetes' activeDeadlineSeconds).

    How many at once: `parsl.max_blocks`, never above `polling.max_queued_jobs`, nor above the executor's share of
    its partition's `max_jobs_per_user` (shared among the executors of that partition, as Snakemake counts the same
    limit over its rules: `base.partition_job_limits`).
    How long: a block holds one worker, so with more tasks than blocks it runs ceil(tasks / blocks) of them in
    sequence: it is asked for the sum of that many of the longest walltimes plus `BLOCK_MARGIN_S`, at most the
    partition's `max_walltime`, and its workers drain in time for the longest task to finish before the block ends.
    Where the partition has no room for a second task, each block is sized for one task (said in the note).
    """
    site = ctx.site
    partition = tasks[0].partition
    walltimes = sorted((t.resources.walltime_s for t in tasks), reverse=True)
    if ctx.scheduler.parsl_threads:  # the local site: no blocks; the driver's threads, as many as the class fits here
        workers = ctx.scheduler.parsl_executor_options(ctx, tasks)["max_workers_per_node"]
        return BlockSizing(1, walltimes[0], None, f"no blocks: {workers} thread(s) of the driver, a task's shell each")
    if not ctx.scheduler.blocks_are_jobs:  # a block is a process here, with no time limit to size
        return BlockSizing(1, walltimes[0], None, "one block on this machine (no time limit)")
    max_blocks = max_jobs_at_once(site, site.parsl.max_blocks)
    shared = ""
    limit = partition_job_limits(site).get(partition)
    if limit is not None:
        labels = [label for label, group in run_classes(ctx).items() if group[0].partition == partition]
        mine = next((i for i, label in enumerate(labels) if {t.id for t in run_classes(ctx)[label]} & {t.id for t in tasks}), 0)
        share = split_limit(limit, len(labels))[mine]
        if len(labels) > limit:  # each keeps one block; the partition's gate (base.PartitionJobs) lets `limit` of them hold one at once
            max_blocks = 1
            shared = f"; partition {partition} allows {limit} job(s) at once for its {len(labels)} executors, which take turns"
        elif share < max_blocks:
            max_blocks = share
            shared = f"; {share} of partition {partition}'s {limit} jobs at once"
    longest = walltimes[0]
    in_sequence = math.ceil(len(tasks) / max_blocks)
    if in_sequence == 1:
        return BlockSizing(max_blocks, longest, None, f"one task per block ({len(tasks)} task(s), up to {max_blocks} block(s){shared})")
    wanted = sum(walltimes[:in_sequence]) + BLOCK_MARGIN_S
    most = site.partitions[partition].max_walltime
    walltime = min(wanted, most)
    drain = walltime - longest - WORKER_START_S
    if drain <= 0:
        return BlockSizing(max_blocks, longest, None,
                           f"{len(tasks)} tasks, up to {max_blocks} block(s){shared}: partition {partition}'s limit "
                           f"({describe_walltime(most)}) has room for one task per block, so blocks are sized for one")
    capped = f", capped at partition {partition}'s limit" if wanted > most else ""
    return BlockSizing(max_blocks, walltime, drain,
                       f"{len(tasks)} tasks, up to {max_blocks} block(s){shared}: a block may run {in_sequence} in sequence, so it "
                       f"asks for {describe_walltime(walltime)}{capped}; workers stop taking tasks after {describe_walltime(drain)}")


def partition_limit_notes(site: Any, tasks: list[Task], by_container: bool, blocks_are_jobs: bool = True) -> list[str]:
    """For each partition the tasks use that has a per-user job limit (`base.partition_job_limits`), one line for
    `portaflow plan`: the limit, how many of its tasks Snakemake runs at once, how Parsl's executors (resource classes)
    share it, and, where there are more executors than the limit, that they take turns and whose tasks wait."""
    limits = partition_job_limits(site)
    groups = resource_classes(tasks, by_container)
    notes = []
    for partition in dict.fromkeys(t.partition for t in tasks):
        if partition not in limits:
            continue
        limit, mine = limits[partition], [t for t in tasks if t.partition == partition]
        labels = [label for label, group in groups.items() if group[0].partition == partition]
        of = f"max_jobs_per_user {site.partitions[partition].max_jobs_per_user}" + (
            f", polling.max_queued_jobs {site.polling.max_queued_jobs}" if limit < site.partitions[partition].max_jobs_per_user else "")
        line = f"partition {partition}: at most {limit} of this run's jobs at once ({of}); {len(mine)} task(s) here. "
        line += ("Snakemake: all at once. " if len(mine) <= limit else
                 f"Snakemake: {limit} at once, the other {len(mine) - limit} wait for a job to end. ")
        if not blocks_are_jobs:
            line += "Parsl: its blocks are processes here, not jobs"
        elif len(labels) <= limit:
            most = max_jobs_at_once(site, site.parsl.max_blocks)
            shares = [min(share, most) for share in split_limit(limit, len(labels))]
            line += f"Parsl: {len(labels)} executor(s), up to {', '.join(map(str, shares))} block(s) each"
        else:
            steps = [sorted(dict.fromkeys(t.step for t in groups[label])) for label in labels]
            line += (f"Parsl: {len(labels)} executors (resource classes: {'; '.join(', '.join(s) for s in steps)}) for {limit} job(s): "
                     f"they take turns, one block each, so the tasks of one class wait while the others' blocks hold the partition")
        notes.append(line)
    return notes


def split_limit(limit: int, parts: int) -> list[int]:
    """`limit` shared among `parts` as evenly as possible, the first ones getting the remainder; each at least 1."""
    return [max(1, limit // parts + (1 if i < limit % parts else 0)) for i in range(parts)]


def recording(provider_class: type, submit_tool: str, reply: str) -> type:
    """A subclass of a ClusterProvider whose `execute_wait` runs nothing: a submission (a command starting with
    `submit_tool`) is recorded and answered with `reply`, what the tool would print, so submit() finishes as after
    a real submission; any other command (a constructor's probe such as `sacct -X`) fails, as on a machine without
    the scheduler, so rendering contacts nothing."""

    class Recording(provider_class):  # type: ignore[misc, valid-type]
        def execute_wait(self, cmd: str, timeout: int | None = None) -> tuple[int, str, str]:
            if not cmd.startswith(submit_tool):
                return 1, "", f"{cmd.split()[0]}: not run while rendering"
            self.recorded = [*getattr(self, "recorded", []), cmd]
            return 0, reply, ""

    Recording.__name__ = Recording.__qualname__ = f"Recording{provider_class.__name__}"
    return Recording


def recorded_submissions(ctx: RunContext, groups: dict[str, list[Task]], jobs_dir: Path, make_provider: Callable[..., Any]
                         ) -> Iterator[tuple[str, str]]:
    """(label, command line) of each executor's block, submitted by its recording provider (`make_provider(ctx,
    label, tasks, recording=True)`).

    Creates jobs_dir at once; each block is submitted only as the caller iterates, so the caller can
    collect (and rename) one block's files before the next block's are written.
    """
    jobs_dir.mkdir(parents=True, exist_ok=True)
    for label, tasks in groups.items():
        provider = make_provider(ctx, label, tasks, recording=True)
        provider.script_dir = str(jobs_dir)
        provider.submit(worker_command_placeholder(label), tasks_per_node=1, job_name=f"parsl.{label}")
        yield label, provider.recorded[0]


def worker_command_placeholder(label: str) -> str:
    """The worker command a rendered block runs: its real arguments exist only once Parsl has started."""
    return f"process_worker_pool.py --label {label} ...  # Parsl adds the interchange address and ports when it starts"


def stable_job_names(text: str) -> str:
    """The job name carries Parsl's submit timestamp: replaced so golden files stay stable."""
    return _PARSL_TIMESTAMP.sub(r"\1.<time>", text)
