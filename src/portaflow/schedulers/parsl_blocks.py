"""What every adapter's Parsl provider shares: a block's shell set-up, its walltime, and render's capture.

Rendering runs a provider's own submit() with a recording `execute_wait`, the one method through which
Parsl's ClusterProvider subclasses (SlurmProvider, CondorProvider) run sbatch or condor_submit: everything
before it (the job files) is Parsl's real work, so the rendered file is exactly what Parsl would hand over.
The recording is a subclass of the provider (`recording()`), not a patched instance.
Parsl itself is imported inside the functions: importing portaflow must not import Parsl.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.plan.model import Task
from portaflow.schedulers.context import init_lines, module_lines

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
        lines.append(f"export PATH={Path(sys.executable).parent}:$PATH")
    return "\n".join(lines)


def longest_walltime(tasks: list[Task]) -> int:
    """A block must outlive the longest task it may run."""
    return max(t.resources.walltime_s for t in tasks)


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
