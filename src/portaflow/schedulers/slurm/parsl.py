"""Parsl on SLURM: a SlurmProvider whose blocks are jobs of exactly one resource class's size, and its render."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.plan.model import Task
from portaflow.schedulers import parsl_blocks
from portaflow.schedulers.base import run_tag
from portaflow.schedulers.parsl_blocks import block_sizing, recorded_submissions, stable_job_names, worker_init
from portaflow.units import format_walltime, walltime_minutes

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

STRIP_FOR_PARSL = ("--time", "--nodes", "--ntasks", "--job-name", "--output", "--error", "--clusters")
"""sbatch options Parsl's own template writes (--clusters: from its `clusters`, which its squeue, sacct and scancel use
too): passing them again would give two conflicting values."""


def slurm_provider(ctx: RunContext, label: str, tasks: list[Task], recording: bool = False) -> Any:
    """A SlurmProvider whose blocks are jobs of exactly this resource class's size (`recording`: for render)."""
    from parsl.launchers import SingleNodeLauncher, SrunLauncher
    from parsl.providers import SlurmProvider

    site, scheduler = ctx.site, ctx.scheduler
    request, partition = tasks[0].resources, tasks[0].partition
    # the block lives as long as the tasks it may run (parsl_blocks.block_sizing; its --time-min is relative to that)
    sizing = block_sizing(ctx, tasks)
    block = dataclasses.replace(request, walltime_s=sizing.walltime_s)
    directives = [d for d in scheduler.directives(block, partition) if d.split("=")[0] not in STRIP_FOR_PARSL]
    directives.append(f"--comment={run_tag(ctx.run_id)}")
    cls = _recording_class() if recording else SlurmProvider
    return cls(
        partition=None,
        clusters=scheduler.clusters(partition),
        nodes_per_block=request.nodes,
        init_blocks=site.parsl.init_blocks,
        min_blocks=0,
        max_blocks=sizing.max_blocks,
        walltime=format_walltime(walltime_minutes(sizing.walltime_s) * 60),  # Parsl writes whole minutes
        scheduler_options="\n".join(f"#SBATCH {d}" for d in directives),
        worker_init=worker_init(ctx, partition=partition),
        exclusive=False,
        launcher=SrunLauncher() if site.slurm.launcher == "srun" else SingleNodeLauncher(),
    )


def _recording_class() -> type:
    from parsl.providers import SlurmProvider

    return parsl_blocks.recording(SlurmProvider, "sbatch", reply="Submitted batch job 0")


def render_blocks(ctx: RunContext, groups: dict[str, list[Task]], jobs_dir: Path) -> list[Path]:
    """Each block's job script, from SlurmProvider.submit() with a recording `sbatch`."""
    written = []
    for label, submitted in recorded_submissions(ctx, groups, jobs_dir, slurm_provider):
        script = next(p for p in Path(jobs_dir).glob(f"parsl.{label}.*") if p.suffix not in (".stdout", ".stderr"))
        final = jobs_dir / f"{label}.sbatch"
        text = stable_job_names(script.read_text())
        final.write_text(text + f"\n# submitted with: {submitted}\n".replace(str(script), str(final)))
        script.unlink()
        written.append(final)
    return written
