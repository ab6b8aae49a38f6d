"""What every engine gets (a RunContext) and returns (one TaskOutcome per task)."""

from __future__ import annotations

import json
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

from portaflow.containers import container_call, wrap
from portaflow.plan.model import Plan, Task
from portaflow.runtime.call import remove_outputs as remove_paths
from portaflow.runtime.dask_cluster import ENV_VAR as DASK_ENV_VAR
from portaflow.schedulers import Scheduler, scheduler_for
from portaflow.spec.loading import LoadedSite
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


def failure_message(exit_code: int | None, task: Task) -> str:
    """The words for a failed command: TIMEOUT when it ran past its walltime."""
    if exit_code == TIMEOUT_EXIT:
        return f"TIMEOUT: ran past its walltime of {format_walltime(task.resources.walltime_s)}"
    return "the command failed"


def remove_outputs(workdir: Path, task: Task) -> None:
    """A failed or cancelled task leaves nothing a later run could take for complete."""
    remove_paths({k: str(workdir / o.path) for k, o in task.outputs.items()})


@dataclass
class RunContext:
    """One run: the plan, the site, where things go, and which tasks the engine must run."""

    plan: Plan
    loaded_site: LoadedSite
    workdir: Path
    run_dir: Path
    tasks: list[Task]
    run_id: str = "render"
    jobs: list[str] = field(default_factory=list)
    """Scheduler job ids the engine submitted (recorded in the manifest; used to cancel)."""
    on_event: Callable[[str, Task, TaskOutcome | None], None] = field(default=lambda kind, task, outcome: None)

    @property
    def site(self):
        return self.loaded_site.site

    @cached_property
    def scheduler(self) -> Scheduler:
        return scheduler_for(self.site.scheduler)(self.loaded_site)

    def log_path(self, task: Task) -> Path:
        return self.run_dir / "logs" / f"{task.id}.log"

    def marker_path(self, task: Task) -> Path:
        return self.run_dir / "done" / task.id

    def exit_code_path(self, task: Task) -> Path:
        return self.run_dir / "exit" / task.id

    def shell_line(self, task: Task) -> str:
        """The complete shell text that runs one task the same way under every engine.

        Strict mode (-e, pipefail) for both engines; then the site's modules and worker_init;
        environment variables (site's, step's, the Dask plan); the command, in a container if asked.
        """
        site = self.site
        lines = ["set -eo pipefail", f"cd {shlex.quote(str(self.workdir))}"]
        lines += [f"module load {shlex.quote(m)}" for m in site.environment.modules]
        lines += list(site.environment.worker_init)
        env = {**site.environment.env, **task.env}
        if task.dask is not None:
            env[DASK_ENV_VAR] = json.dumps(self.dask_settings(task), sort_keys=True, separators=(",", ":"))
        lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        call = None if self.scheduler.runs_containers() else container_call(site, task.container)
        command = wrap(task.command, call, site, str(self.workdir), task.resources.gpus, list(env))
        # The step's own walltime, enforced the same way on every site and engine (a Parsl block may run
        # several tasks; SLURM checks limits only every ~30 s): exit 124 means it ran out of time.
        # `timeout` runs the step in a process group of its own (so a timeout stops all of it); signals
        # sent to this shell (an engine cancelling, Ctrl-C) are passed on to it, and so reach the step.
        lines += [
            f"timeout --kill-after=10 {task.resources.walltime_s} bash -c {shlex.quote(command)} &",
            "pf_step=$!",
            "trap 'kill -TERM \"$pf_step\" 2>/dev/null' TERM INT HUP",
            "pf_status=0",
            "while kill -0 \"$pf_step\" 2>/dev/null; do wait \"$pf_step\" && pf_status=0 || pf_status=$?; done",
            'test "$pf_status" -eq 0 || exit "$pf_status"',
        ]
        return "\n".join(lines)


    def dask_settings(self, task: Task) -> dict:
        """What `runtime.dask_cluster` needs inside the job: the DaskPlan, plus worker-job options."""
        dask = task.dask
        assert dask is not None
        settings = {k: v for k, v in dask.__dict__.items() if not k.endswith(("_worker", "_partition"))}
        settings["scheduler"] = self.site.scheduler
        if dask.mode == "jobs" and self.site.scheduler == "kubernetes":  # workers as pods, built from the profile
            from portaflow.schedulers.kubernetes_dask import worker_settings

            settings.update(worker_settings(self.scheduler, task, self.run_id))
        elif dask.mode == "jobs":
            settings["address"] = self.site.network.address
            for kind in ("cpu", "gpu"):
                request, partition = getattr(dask, f"{kind}_worker"), getattr(dask, f"{kind}_worker_partition")
                settings[f"{kind}_worker"] = request.__dict__ if request else None
                settings[f"{kind}_worker_directives"] = self.scheduler.directives(request, partition) + [
                    f"--comment=portaflow:{self.run_id}"] if request else []
        return settings


def render_dask_clusters(ctx: RunContext, out_dir: Path) -> list[Path]:
    """What a run's `dask` steps create on the site themselves, beside the engine's files: on Kubernetes with
    `dask.mode: jobs`, `dask/<task>.yaml` (the worker pods, or the DaskCluster where the site runs the operator).
    Written by the driver for every engine; nothing elsewhere (SLURM worker jobs are dask-jobqueue's to write)."""
    tasks = [t for t in ctx.tasks if t.dask is not None and t.dask.mode == "jobs"]
    if ctx.site.scheduler != "kubernetes" or not tasks:
        return []
    from portaflow.runtime.dask_pods import worker_pods
    from portaflow.schedulers.kubernetes import write_manifests

    k8s = ctx.site.kubernetes
    written = []
    (out_dir / "dask").mkdir(parents=True, exist_ok=True)
    for task in tasks:
        settings = ctx.dask_settings(task)
        path = out_dir / "dask" / f"{task.id}.yaml"
        if settings["operator"]:
            bodies = settings["cluster_resources"]
            what = (f"The DaskCluster the step {task.display} creates in namespace {k8s.namespace} (dask-kubernetes' KubeCluster; "
                    "the Dask operator runs its scheduler and workers). At run time the name gains a random suffix.")
        else:
            address = f"tcp://STEP-POD-IP:{settings['port']}"
            bodies = worker_pods(settings, address, "00000")
            what = (f"The worker pods the step {task.display} creates in namespace {k8s.namespace} (runtime/dask_pods.py); "
                    f"its own pod runs the Dask scheduler. At run time {address} is that pod's address and 00000 a random id.")
        write_manifests(path, bodies, what + f"\nBuilt from site {ctx.site.name}.")
        written.append(path)
    return written


class Engine(ABC):
    """Compile the chosen tasks into an engine's program; render it, or run it."""

    name: str

    @abstractmethod
    def render(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        """Write what would be handed to the engine and the scheduler; return the files written."""

    @abstractmethod
    def execute(self, ctx: RunContext) -> dict[str, TaskOutcome]:
        """Run ctx.tasks; every task gets an outcome. KeyboardInterrupt cancels everything."""
