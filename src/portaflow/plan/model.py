"""The plan's data: tasks with everything concrete (paths, command, resources, partition)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from portaflow.spec.workflow import Comparison


@dataclass(frozen=True)
class TaskResources:
    """A task's request in normal units, as the site will be asked for it."""

    cores: int
    memory_mib: int
    walltime_s: int
    gpus: int = 0
    gpu_model: str | None = None
    nodes: int = 1


@dataclass(frozen=True)
class DaskPlan:
    """How a `dask` step's cluster is made, decided from the step and the site's `dask` section."""

    mode: Literal["local", "in_allocation", "jobs"]
    cpu_workers: int
    gpu_workers: int
    threads: int
    worker_memory_mib: int
    gpu_resource: str
    cpu_worker: TaskResources | None = None
    cpu_worker_partition: str | None = None
    gpu_worker: TaskResources | None = None
    gpu_worker_partition: str | None = None


@dataclass(frozen=True)
class OutputPlan:
    name: str
    path: str
    directory: bool
    compare: Comparison


@dataclass(frozen=True)
class Task:
    """One job-sized unit: a step, or one value of a scattered step."""

    id: str
    """Safe identifier (file names, Snakemake rule names, job names)."""
    display: str
    """What people read: 'generate[file=3]'."""
    step: str
    kind: Literal["command", "python", "dask"]
    scatter: tuple[tuple[str, Any], ...]
    inputs: dict[str, str | tuple[str, ...]]
    outputs: dict[str, OutputPlan]
    command: str
    """The shell command, every value quoted; environment and container are added by the engine."""
    resources: TaskResources
    partition: str
    container: str | None
    env: dict[str, str]
    retries: int
    depends: tuple[str, ...]
    dask: DaskPlan | None = None
    partition_reason: str = ""
    """Why `partition` won and each other partition lost, in one line (`portaflow plan`)."""

    def input_paths(self) -> list[str]:
        out: list[str] = []
        for value in self.inputs.values():
            out.extend([value] if isinstance(value, str) else value)
        return out

    def output_paths(self) -> list[str]:
        return [o.path for o in self.outputs.values()]


@dataclass
class Plan:
    """All tasks of one run in dependency order, plus what the run needs from outside."""

    workflow: str
    site: str
    scheduler: str
    parameters: dict[str, Any]
    tasks: list[Task]
    external_inputs: dict[str, list[str]] = field(default_factory=dict)
    """Input paths no task produces -> ids of the tasks that read them (preflight checks they exist)."""
    source: str | None = None
    """The workflow file the plan was made from (set by `driver.load_plan`; None for a plan made in code). The run's
    RO-Crate keeps a copy of it."""

    def __post_init__(self) -> None:
        self.by_id = {t.id: t for t in self.tasks}

    def downstream(self, task_ids: set[str]) -> set[str]:
        """Every task that depends, directly or not, on one of `task_ids` (the ids included)."""
        children: dict[str, list[str]] = {}
        for task in self.tasks:
            for dep in task.depends:
                children.setdefault(dep, []).append(task.id)
        out, todo = set(task_ids), list(task_ids)
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out
