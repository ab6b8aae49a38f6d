"""A scheduler adapter: everything portaflow knows about one scheduler, in one class.

After dask-jobqueue's Job classes and ReFrame's scheduler back ends: the engines (Parsl, Snakemake), the
runtime and the driver never ask which scheduler a site uses; they ask its adapter. An adapter answers:

- request -> options: `directives()` (the scheduler's terms for one job of a size, on a partition);
- Parsl: `parsl_provider()` (the provider of one executor's blocks), `parsl_executor_options()`,
  `render_parsl_blocks()` (what the provider hands to the scheduler, captured);
- Snakemake: `snakemake_resources()` (per-rule resources in the executor plugin's names),
  `snakemake_profile()` (the plugin's settings), `snakemake_launcher()`, `render_snakemake_submissions()`,
  and, where jobs do not see the driver's files, `remote_job_script()`;
- Dask: `dask_worker_settings()` (worker jobs for `dask.mode: jobs`), `render_dask_clusters()`;
- the world: `connection_problems()` (probe), `cancel_run()`, `check_rendered()`, `check()` of the profile.

A new scheduler is one subclass (usually a package under `portaflow/schedulers/`) registered with
`@register_scheduler` or through the `portaflow.schedulers` entry point group (schedulers/__init__.py).
Defaults here describe a scheduler that runs jobs on hosts sharing the driver's filesystem.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from portaflow.errors import InputError, Problem, SpecError
from portaflow.plan.model import Task, TaskResources
from portaflow.spec.loading import LoadedSite
from portaflow.units import walltime_minutes

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext


PARTITION_SETTINGS = frozenset({"account", "qos", "qos_by_walltime", "extra_directives", "slurm_partition"})
"""Partition fields that change how a job is asked for (not where its shell runs): each adapter says which it applies."""


@dataclass(frozen=True)
class JobUsage:
    """What a scheduler's accounting says one job used (`Scheduler.accounting`); None where it does not say."""

    job_id: str
    state: str | None = None
    submitted: str | None = None
    """ISO times, as the scheduler prints them (the site's local time)."""
    started: str | None = None
    ended: str | None = None
    elapsed_s: float | None = None
    cpu_s: float | None = None
    """CPU time (user + system) of all the job's processes."""
    cores: int | None = None
    """Cores allocated to the job."""
    max_rss_mib: float | None = None
    """The largest resident memory any of its steps reached."""
    memory_mib: float | None = None
    """Memory requested (allocated) for the job."""

    @property
    def cpu_efficiency(self) -> float | None:
        """CPU time over (elapsed time x cores allocated): 1.0 when every core was busy all the time."""
        if self.cpu_s is None or not self.elapsed_s or not self.cores:
            return None
        return self.cpu_s / (self.elapsed_s * self.cores)

    @property
    def memory_efficiency(self) -> float | None:
        """Peak resident memory over the memory requested."""
        if self.max_rss_mib is None or not self.memory_mib:
            return None
        return self.max_rss_mib / self.memory_mib


class Scheduler:
    """Translate requests into scheduler options; build what each engine needs; probe, cancel, check.

    `managed_flags` are the options portaflow itself sets from the plan: an admin's
    `extra_directives` may not repeat them, or a job would silently get the wrong partition,
    time or memory (the last flag wins in sbatch).
    """

    name: ClassVar[str]
    managed_flags: ClassVar[frozenset[str]] = frozenset()
    blocks_are_jobs: ClassVar[bool] = True
    """Whether a Parsl block is a scheduler job with an id (False where a block is a process on this machine)."""
    snakemake_executor: ClassVar[str | None] = None
    """The Snakemake executor plugin's name (None: Snakemake's own local executor)."""
    snakemake_submission: ClassVar[re.Pattern[str] | None] = None
    """The message the executor plugin logs when it submitted a job (groups `id`: the scheduler's job id, `job`:
    Snakemake's, if the message names it). Snakemake logs no structured event with the id (engines.snakemake_events)."""
    partition_settings: ClassVar[frozenset[str]] = frozenset()
    """Which per-partition job settings (PARTITION_SETTINGS) this scheduler applies; a profile setting another is refused.
    (A partition's `modules` and `worker_init` go into the job's shell, on every scheduler.)"""
    snakemake_failure_names_job: ClassVar[bool] = False
    """Whether a failed step's report names the scheduler job it ran in (where a job id is what a person looks up)."""

    def __init__(self, loaded: LoadedSite):
        self.loaded = loaded
        self.site = loaded.site

    # -- request -> options ----------------------------------------------------------------------
    def directives(self, request: TaskResources, partition: str) -> list[str]:
        """The scheduler options for one job of this size on this partition."""
        return []

    def task_prologue(self, ctx: RunContext, task: Task) -> tuple[list[str], list[str]]:
        """Shell lines a task's job runs before its command, under every engine (`RunContext.shell_line`), and the
        environment variables they export (passed into the step's container). Nothing by default: a scheduler
        that hands each job its own devices (SLURM's GRES) needs none."""
        return [], []

    # -- Parsl -----------------------------------------------------------------------------------
    def parsl_provider(self, ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> Any:
        """The Parsl provider for one executor (resource class). `offline`: rendering, contact nothing."""
        raise NotImplementedError(f"scheduler {self.name}: no Parsl provider")

    def parsl_executor_options(self, ctx: RunContext, tasks: list[Task]) -> dict[str, Any]:
        """HighThroughputExecutor options that depend on the scheduler: a block is one job sized for one task."""
        return {"max_workers_per_node": 1, "cores_per_worker": 1, "available_accelerators": []}

    def parsl_blocks_hold_one_image(self) -> bool:
        """Whether a Parsl block is itself a container (then tasks of different images need different executors)."""
        return self.runs_containers()

    def render_parsl_blocks(self, ctx: RunContext, groups: dict[str, list[Task]], out_dir: Path) -> list[Path]:
        """Each executor's block as its provider hands it to the scheduler (nothing where blocks are processes)."""
        return []

    # -- Snakemake -------------------------------------------------------------------------------
    def snakemake_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """Per-rule resources in the names Snakemake and this scheduler's executor plugin read."""
        res = common_rule_resources(task)
        if task.resources.gpus:
            res["gpu"] = task.resources.gpus
        return res

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        """The executor's profile settings (Snakemake's config.yaml keys)."""
        raise NotImplementedError(f"scheduler {self.name}: no Snakemake executor settings")

    def plugin_settings(self, ctx: RunContext) -> dict[str, Any]:
        """What every executor plugin is told: its name, how many jobs may wait at once, how often to poll."""
        site = self.site
        return {
            "executor": self.snakemake_executor,
            "jobs": max_jobs_at_once(site, site.snakemake.jobs),
            "seconds-between-status-checks": site.polling.interval,
        }

    def snakemake_run_profile(self, ctx: RunContext, profile: dict[str, Any]) -> dict[str, Any]:
        """The profile as a run uses it, with what only this cluster can decide (asked when a run starts)."""
        return profile

    def snakemake_launcher(self, ctx: RunContext, out_dir: Path, dry_run: bool) -> list[str]:
        """The command that starts Snakemake's CLI (its arguments follow)."""
        return [sys.executable, "-m", "snakemake"]

    def render_snakemake_submissions(self, ctx: RunContext, out_dir: Path, profile: dict[str, Any], command: Any,
                                     env: dict[str, str], capture: bool = True) -> list[Path]:
        """What the executor plugin would hand to the scheduler, captured at the hand-off (when rendering)."""
        return []

    def jobs_see_driver_filesystem(self) -> bool:
        """Whether a job can write the log, exit-status and marker files the driver reads."""
        return True

    def remote_job_script(self, ctx: RunContext, task: Task) -> str:
        """The shell of a job that does not see the driver's filesystem."""
        raise NotImplementedError(f"scheduler {self.name}: jobs see the driver's filesystem")

    def uses_object_store(self) -> bool:
        """Whether Snakemake's jobs read and write through an object store (the Snakefile then stages files)."""
        return False

    def client_environment(self, resolve: bool = True) -> dict[str, str]:
        """Environment variables the scheduler's client tools need (which server, which credentials)."""
        return {}

    def worker_hosts(self, ctx: RunContext, tasks: list[Task]) -> list[str]:
        """Hosts (names or addresses) where these tasks' workers may run, as far as the scheduler can say, asked
        when a run starts: the driver listens on the address of its route toward them (`addresses.choose_address`).
        Empty when the scheduler cannot say; the rule then falls back to Parsl's own guesses."""
        return []

    # -- Dask ------------------------------------------------------------------------------------
    def dask_worker_settings(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """What the step's job needs to start its Dask workers as jobs of their own (`dask.mode: jobs`)."""
        raise InputError(f"site {self.site.name}: dask.mode jobs is not supported on {self.name} sites")

    def render_dask_clusters(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        """Files for what a run's `dask` steps create on the site themselves (beside the engine's files)."""
        return []

    # -- the world -------------------------------------------------------------------------------
    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """Cancel every job of a run still queued or running; return the ids cancelled."""
        return []

    def accounting(self, job_ids: list[str]) -> dict[str, JobUsage]:
        """What the scheduler's accounting says each job used (queue wait, CPU, memory), for `portaflow report`; a job it
        knows nothing of is left out. Nothing by default: no accounting (the report then says "not measured")."""
        return {}

    def connection_problems(self) -> list[str]:
        """Why jobs cannot be submitted from this machine now (empty: the scheduler answers). Asked before a
        run submits anything, and by the matrix to decide between running and rendering a cell."""
        return []

    def check_rendered(self, files: list[Path]) -> list[str]:
        """Problems the scheduler's own tools find in rendered files (job scripts, submit descriptions,
        manifests). Why: a site that cannot be reached from here is still checked as far as offline
        tools allow, e.g. in the portability matrix's rendered-only cells."""
        return []

    def runs_containers(self) -> bool:
        """Whether the scheduler itself starts each job in its step's image (then the command is not wrapped again)."""
        return False

    @classmethod
    def flag_name(cls, directive: str) -> str:
        """'--mem=4G' -> '--mem'; '-p gpu' -> '-p'."""
        text = directive.strip()
        return text.split("=", 1)[0].split(None, 1)[0] if text else text

    def check(self) -> None:
        """Refuse extra directives (the site's and each partition's) that override a managed flag, and per-partition
        settings this scheduler does not apply (SpecError pointing at the line)."""
        problems = []
        places = [(("extra_directives",), self.site.extra_directives)]
        places += [(("partitions", name, "extra_directives"), part.extra_directives) for name, part in self.site.partitions.items()]
        for keypath, directives in places:
            for index, directive in enumerate(directives):
                flag = self.flag_name(directive)
                if flag in self.managed_flags:
                    problems.append(self.loaded.problem(
                        (*keypath, index), f"{directive!r} sets {flag}, which portaflow manages from the plan",
                        "set it through the profile's own key (partition limits, account, slurm.qos, slurm.memory_rule, slurm.gpu_syntax) or "
                        "the step's resources",
                    ))
        problems += self.partition_setting_problems()
        if problems:
            raise SpecError(problems)

    def shortcut_overrides(self, cores: int | None, jobs: int | None) -> dict[str, str]:
        """The profile values that `portaflow run --cores N --jobs N` stand for (site overrides). They are this machine's
        shortcuts: a batch scheduler's sizes and limits come from its profile (--site-set), so the default refuses."""
        flags = " and ".join(f for f, v in (("--cores", cores), ("--jobs", jobs)) if v is not None)
        raise InputError(f"{flags}: for the local site only; site {self.site.name} (scheduler {self.site.scheduler}) takes its sizes "
                         "and limits from its profile: use --site-set (e.g. polling.max_queued_jobs=N, parsl.max_blocks=N, "
                         "snakemake.jobs=N)")

    def partition_setting_problems(self) -> list[Problem]:
        """A partition's own account, qos or extra_directives where this scheduler would not apply them (rather than
        ignore them): each at its line."""
        problems = []
        for name, part in self.site.partitions.items():
            for key in sorted(PARTITION_SETTINGS - self.partition_settings):
                if getattr(part, key):
                    problems.append(self.loaded.problem(
                        ("partitions", name, key), f"{self.name} sites do not apply a partition's own {key}",
                        f"set it for the whole site, or remove it (per-partition {key} is read on SLURM sites)"))
        return problems

    def check_user_values(self) -> None:
        """Before planning a run: values each user must supply (an account where the site requires one)."""
        if self.site.account_required and not self.site.account:
            raise InputError(
                f"site {self.site.name} requires an account and none is set: add --site-set account=YOUR_PROJECT "
                "or export PORTAFLOW_SITE_ACCOUNT=YOUR_PROJECT (your project or budget name, as the site's docs say)"
            )


def common_rule_resources(task: Task) -> dict[str, Any]:
    """The resources every Snakemake rule carries: memory in MiB and the walltime in whole minutes (rounded up)."""
    r = task.resources
    return {"mem_mb": r.memory_mib, "runtime": walltime_minutes(r.walltime_s)}


def run_tag(run_id: str) -> str:
    """The comment every SLURM job of a run carries (Parsl blocks, Dask worker jobs), so that cancelling finds the run's
    jobs by it. (HTCondor tags jobs with +PortaflowRun and Kubernetes with the run-id label, each in its adapter.)"""
    return f"portaflow:{run_id}"


def max_jobs_at_once(site: Any, engine_limit: int) -> int:
    """How many jobs an engine may have queued at once: its own limit, never above the site's polling etiquette."""
    return min(engine_limit, site.polling.max_queued_jobs)
