"""One run as every adapter and engine sees it: the plan, the site, where things go, which tasks run.

Why here, below the engines: a scheduler adapter builds the Parsl provider and the Snakemake executor
settings for a run, so it needs the run's context; defining it at the adapters' layer lets engines and
adapters share it without the adapters importing an engine.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.containers import container_call, wrap
from portaflow.errors import Interrupted
from portaflow.plan.model import Plan, Task
from portaflow.runtime.dask_cluster import ENV_VAR as DASK_ENV_VAR
from portaflow.spec.loading import LoadedSite
from portaflow.spec.variables import shell_word

if TYPE_CHECKING:
    from portaflow.schedulers.base import Scheduler


def module_lines(site: Any, partition: str | None = None) -> list[str]:
    """`module load` for each of the site's modules, then the partition's (`partitions.NAME.modules`: Anvil's
    `modtree/gpu` only for GPU jobs), names quoted (one rule for every job script portaflow writes)."""
    extra = site.partitions[partition].modules if partition in site.partitions else []
    return [f"module load {shlex.quote(m)}" for m in [*site.environment.modules, *extra]]


def init_lines(site: Any, partition: str | None = None) -> list[str]:
    """The site's `worker_init` lines, then the partition's (wICE: `module load cluster/wice/<queue>`)."""
    extra = site.partitions[partition].worker_init if partition in site.partitions else []
    return [*site.environment.worker_init, *extra]


@dataclass
class RunContext:
    """One run: the plan, the site, where things go, and which tasks the engine must run."""

    plan: Plan
    loaded_site: LoadedSite
    workdir: Path
    run_dir: Path
    tasks: list[Task]
    scheduler: Scheduler
    """The site's scheduler adapter (`schedulers.adapter_for(loaded_site)`): everything an engine needs to know about the
    scheduler comes from it. Passed in rather than looked up, so the adapters' layer needs no registry here."""
    run_id: str = "render"
    jobs: list[str] = field(default_factory=list)
    """Scheduler job ids the engine submitted (recorded in the manifest; used to cancel)."""
    driver_address: dict[str, str] | None = None
    """Where the engine's workers reach the driver and how that was chosen (`addresses.AddressChoice.as_record`),
    once the engine chose it; recorded in the manifest."""
    on_event: Callable[[str, Task, Any], None] = field(default=lambda kind, task, outcome: None)
    stop_signal: int | None = None
    """Set by the driver's signal handler (SIGINT, SIGTERM, SIGHUP): the engine stops where it waits (raise_if_stopped)."""
    keep_going: bool = True
    """After a task fails, start the tasks that do not depend on it (the default); False (--fail-fast): start no more."""

    def raise_if_stopped(self) -> None:
        """Where an engine waits: Interrupted (a KeyboardInterrupt) once a signal asked the run to stop."""
        if self.stop_signal is not None:
            raise Interrupted(self.stop_signal)

    @property
    def site(self):
        return self.loaded_site.site

    def log_path(self, task: Task) -> Path:
        return self.run_dir / "logs" / f"{task.id}.log"

    def marker_path(self, task: Task) -> Path:
        return self.run_dir / "done" / task.id

    def exit_code_path(self, task: Task) -> Path:
        return self.run_dir / "exit" / task.id

    def usage_path(self, task: Task) -> Path:
        return usage_path(self.run_dir, task.id)

    def shell_line(self, task: Task) -> str:
        """The complete shell text that runs one task the same way under every engine.

        Strict mode (-e, pipefail) for both engines; then the site's modules and worker_init;
        environment variables (site's, step's, the Dask plan); the command, in a container if asked.
        """
        site = self.site
        lines = ["set -eo pipefail", f"pf_t0={NOW}", f"cd {shlex.quote(str(self.workdir))}"]
        lines += module_lines(site, task.partition)
        lines += init_lines(site, task.partition)
        # The site's values are the site's names: the job's shell expands their `$NAME`s on the node
        # (`PATH: /opt/tool/bin:$PATH`). The step's own values come from the workflow and its parameters: literal.
        exports = {name: shell_word(value) for name, value in site.environment.env.items()}
        own = dict(task.env)
        if task.dask is not None:
            own[DASK_ENV_VAR] = json.dumps(self.dask_settings(task), sort_keys=True, separators=(",", ":"))
        exports.update({name: shlex.quote(value) for name, value in own.items()})
        lines += [f"export {name}={word}" for name, word in exports.items()]
        prologue, exported = self.scheduler.task_prologue(self, task)
        lines += prologue
        call = None if self.scheduler.runs_containers() else container_call(site, task.container)
        command = wrap(task.command, call, site, str(self.workdir), task.resources.gpus, [*exports, *exported])
        # The step's own walltime, enforced the same way on every site and engine (a Parsl block may run
        # several tasks; SLURM checks limits only every ~30 s): exit 124 means it ran out of time.
        # `timeout` runs the step in a process group of its own (so a timeout stops all of it); signals
        # sent to this shell (an engine cancelling, Ctrl-C) are passed on to it, and so reach the step.
        launcher = "".join(f"{shlex.quote(word)} " for word in self.scheduler.step_launcher(self, task))
        lines += [
            f"{launcher}timeout --kill-after=10 {task.resources.walltime_s} bash -c {shlex.quote(command)} &",
            "pf_step=$!",
            "trap 'kill -TERM \"$pf_step\" 2>/dev/null' TERM INT HUP",
            # `wait` first: a step that already ended (a fast failure on a loaded machine) has been reaped, so `kill -0`
            # no longer sees it, but `wait` still returns its status. Waiting again while it runs: a trapped signal
            # interrupts `wait` (status > 128) and the step then ends with its own status.
            "pf_status=0",
            "wait \"$pf_step\" || pf_status=$?",
            "while kill -0 \"$pf_step\" 2>/dev/null; do pf_status=0; wait \"$pf_step\" || pf_status=$?; done",
            usage_line(self.usage_path(task)),
            'test "$pf_status" -eq 0 || exit "$pf_status"',
        ]
        return "\n".join(lines)

    def dask_settings(self, task: Task) -> dict:
        """What `runtime.dask_cluster` needs inside the job: the DaskPlan, plus what the adapter adds for worker jobs."""
        dask = task.dask
        assert dask is not None
        settings = {k: v for k, v in dask.__dict__.items() if not k.endswith(("_worker", "_partition"))}
        settings["scheduler"] = self.site.scheduler
        # Where the step notes its Dask scheduler's address and each worker's host (the manifest's `network`),
        # relative to the work directory the step runs in.
        settings["record"] = f".portaflow/runs/{self.run_id}/dask/{task.id}.json"
        if dask.mode == "jobs":
            settings.update(self.scheduler.dask_worker_settings(self, task))
        elif task.resources.nodes > 1:  # in the step's allocation, on several nodes: the adapter says how workers start there
            settings.update(self.scheduler.dask_allocation_settings(self, task))
        return settings


NOW = "${EPOCHREALTIME:-$(date +%s.%N)}"
"""The time now, in seconds since the epoch, in the job's shell (bash 5's variable; `date` for older shells)."""


def usage_path(run_dir: Path, task_id: str) -> Path:
    """Where a task's shell notes each try: `logs/<task>.usage` in the run directory (beside its log)."""
    return run_dir / "logs" / f"{task_id}.usage"


def usage_line(path: Path) -> str:
    """The job shell's note of one try, appended to PATH: `try START END STATUS`, then bash's `times` (the shell's
    own CPU time, then its children's: the step's processes, all reaped by `wait`).

    Why in the job's shell: it is the one place every engine and scheduler runs the step, and the only one that
    knows when the step really started (a scheduler's queue wait is before it). `times` runs in this shell (a
    subshell's children times start at zero). A note that cannot be written (a site whose jobs do not see the
    run directory) is given up silently: it only costs the report its times."""
    return (f'{{ echo "try $pf_t0 {NOW} $pf_status"; times; }} 2>/dev/null >>{shlex.quote(str(path))} || true')


def read_tries(run_dir: Path, task_id: str) -> list[dict[str, Any]]:
    """A task's tries as its shell noted them (`usage_line`): started and ended (seconds since the epoch), the exit
    status, the CPU seconds (user + system) its processes used, and, where the step ran under `runtime.peak` (the
    local site), their peak resident memory (`max_rss_mib`, from its `rss KiB` line just before the try's). Empty when
    nothing was noted."""
    try:
        lines = usage_path(run_dir, task_id).read_text(errors="replace").splitlines()
    except OSError:
        return []
    tries: list[dict[str, Any]] = []
    for n, line in enumerate(lines):
        words = line.split()
        if len(words) != 4 or words[0] != "try":
            continue
        try:
            started, ended = (float(w.replace(",", ".")) for w in words[1:3])
            status = int(words[3])
        except ValueError:
            continue
        cpu = _times_seconds(lines[n + 2]) if n + 2 < len(lines) else None
        note: dict[str, Any] = {"started": started, "ended": ended, "exit": status, "cpu_s": cpu}
        before = lines[n - 1].split() if n else []
        if len(before) == 2 and before[0] == "rss" and before[1].isdigit():
            note["max_rss_mib"] = round(int(before[1]) / 1024, 1)
        tries.append(note)
    return tries


def _times_seconds(line: str) -> float | None:
    """`0m1.250s 0m0.030s` (bash's `times`: user, system) -> 1.28."""
    total = 0.0
    words = line.split()
    if len(words) != 2:
        return None
    for word in words:
        minutes, _, seconds = word.rstrip("s").replace(",", ".").partition("m")
        try:
            total += int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    return round(total, 3)
