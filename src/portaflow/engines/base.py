"""What every engine gets (a RunContext) and returns (one TaskOutcome per task)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from portaflow.plan.model import Task
from portaflow.runtime.call import remove_outputs as remove_paths
from portaflow.schedulers.context import RunContext
from portaflow.units import format_walltime

TIMEOUT_EXIT = 124
"""What `timeout` exits with when a step runs past its walltime."""


@dataclass
class TaskOutcome:
    task_id: str
    ok: bool
    exit_code: int | None = None
    job_id: str | None = None
    message: str = ""
    started: float | None = None
    """When the task's (last) try started, as the engine knows it (epoch seconds; None when it never started or the
    engine cannot tell). Parsl: when its worker began the command; Snakemake: when it dispatched the job."""
    finished: float | None = None
    """When the engine reported the task finished (epoch seconds)."""


def failure_message(exit_code: int | None, task: Task) -> str:
    """The words for a failed command: TIMEOUT when it ran past its walltime."""
    if exit_code == TIMEOUT_EXIT:
        return f"TIMEOUT: ran past its walltime of {format_walltime(task.resources.walltime_s)}"
    return "the command failed"


def not_run_message(ctx: RunContext, task: Task, failed: set[str], stopped_at_failure: bool) -> str:
    """Why a task never ran, the same words for every engine: a task upstream (in `failed`) failed, or (--fail-fast)
    the run started nothing more after its first failure, or the engine stopped before it."""
    if task.id in ctx.plan.downstream(failed - {task.id}):  # reached from another task that failed
        return "not run: a task it depends on failed"
    if stopped_at_failure:
        return "not started: the run stopped at its first failure (--fail-fast)"
    return "not run: the engine stopped before it"


def remove_outputs(workdir: Path, task: Task) -> None:
    """A failed or cancelled task leaves nothing a later run could take for complete; nothing outside `workdir`
    is ever removed (the remover checks each path again, whatever the planner let through)."""
    remove_paths({k: o.path for k, o in task.outputs.items()}, root=workdir)


class Engine(ABC):
    """Compile the chosen tasks into an engine's program; render it, or run it."""

    name: str

    @abstractmethod
    def render(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        """Write what would be handed to the engine and the scheduler; return the files written."""

    @abstractmethod
    def execute(self, ctx: RunContext) -> dict[str, TaskOutcome]:
        """Run ctx.tasks; every task gets an outcome. KeyboardInterrupt cancels everything."""
