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
- the world: `connection_problems()` (probe), `cancel_run()`, `check_rendered()`, `check()` of the profile;
  `submit_probe()` and `probe_states()` for `portaflow site check` (one tiny job per partition).

A new scheduler is one subclass (usually a package under `portaflow/schedulers/`) registered with
`@register_scheduler` or through the `portaflow.schedulers` entry point group (schedulers/__init__.py).
Defaults here describe a scheduler that runs jobs on hosts sharing the driver's filesystem.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from portaflow.errors import InputError, PortaflowError, Problem, SpecError
from portaflow.plan.model import Task, TaskResources
from portaflow.spec.loading import LoadedSite
from portaflow.spec.variables import variables
from portaflow.units import parse_walltime_seconds, walltime_minutes

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

log = logging.getLogger(__name__)


PARTITION_SETTINGS = frozenset({"account", "qos", "qos_by_walltime", "extra_directives", "slurm_partition", "clusters"})
"""Partition fields that change how a job is asked for (not where its shell runs): each adapter says which it applies."""


@dataclass(frozen=True)
class ProbeJob:
    """One `portaflow site check` probe as the adapter submitted it: which partition, the scheduler's job id, and when
    it was submitted (time.time(), to measure the queue wait against the job's own start time)."""

    partition: str
    job_id: str
    submitted_at: float


PASSED, WRONG, UNCHECKED = "passed", "wrong", "could not check"
"""The verdicts of one comparison of a profile with its site (`SiteFinding.verdict`)."""


@dataclass(frozen=True)
class SiteFinding:
    """One comparison of the profile with the site (`Scheduler.compare_profile`, read by `portaflow site check`):
    passed, wrong (the profile says `profile`, the site says `site`; change `key`), or could not check (`why`).

    Why a record rather than a message: the check's table and its `--json` both need the key to change and the two
    values side by side, and CI asserts on the key."""

    what: str
    verdict: str
    key: str | None = None
    profile: str | None = None
    site: str | None = None
    why: str = ""

    @property
    def text(self) -> str:
        """The finding as one line: 'wrong: profile says X, site says Y, key K', or 'could not check: why'."""
        if self.verdict == WRONG:
            return f"wrong: profile says {self.profile}, site says {self.site}, key {self.key}" + (f" ({self.why})" if self.why else "")
        if self.verdict == UNCHECKED:
            return f"could not check: {self.why}"
        return "passed" + (f": {self.site}" if self.site else "")


class ProbeUnavailable(InputError):
    """This scheduler's adapter cannot submit a probe job from here (exit 2: nothing was submitted)."""


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
    parsl_threads: ClassVar[bool] = False
    """Whether Parsl runs the bash apps in threads of the driver (a ThreadPoolExecutor per resource class, sized by
    `parsl_executor_options`' max_workers_per_node) instead of HighThroughputExecutor worker pools. Where a block would
    only be more processes on the driver's own machine, a pool adds nothing but its start-up: an interchange, a pool
    manager and a spawned worker per slot, each importing Parsl again (~8 s of CPU per run on a laptop)."""
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

    def step_launcher(self, ctx: RunContext, task: Task) -> list[str]:
        """Words put before the step's command in the job's shell (`RunContext.shell_line`): a program that starts it
        and waits for it. None by default; the local adapter notes the step's peak memory so (`runtime.peak`), where no
        scheduler's accounting does."""
        return []

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
        return self.partition_hosts(sorted({t.partition for t in tasks}))

    def partition_hosts(self, partitions: list[str]) -> list[str]:
        """Hosts where jobs on these partitions may run (a run's workers; `site check`'s probes), for the driver's
        address. Empty when the scheduler cannot say."""
        return []

    # -- Dask ------------------------------------------------------------------------------------
    def dask_worker_settings(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """What the step's job needs to start its Dask workers as jobs of their own (`dask.mode: jobs`)."""
        raise InputError(f"site {self.site.name}: dask.mode jobs is not supported on {self.name} sites")

    def dask_allocation_settings(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """`dask.mode: in_allocation` for a step on several nodes: how its job starts a worker on each of them
        (`cluster`: 'module:function' of the runtime's factory, and what it needs). The default starts none: the
        workers stay beside the scheduler on the job's first node (runtime.dask_cluster), as on one node."""
        return {}

    def render_dask_clusters(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        """Files for what a run's `dask` steps create on the site themselves (beside the engine's files)."""
        return []

    # -- the world -------------------------------------------------------------------------------
    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """Cancel every job of a run still queued or running; return the ids cancelled."""
        return []

    def jobs_of_run(self, run_id: str) -> list[str]:
        """The ids of a run's jobs the scheduler still lists (queued, running or being ended), found by the run tag
        every job of the run carries (`run_tag`; each adapter says where). Asked by a rerun after the driver was
        killed. Default: none (the local site's jobs are processes: `engines.leftovers` finds and stops them)."""
        return []

    def cancel_previous_run(self, run_id: str, wait_s: float = 120.0, poll_s: float = 1.0) -> list[str]:
        """Before a rerun submits anything: cancel the jobs a killed run left on the scheduler, and wait until the
        scheduler no longer lists them. Returns their ids (empty: none was left).

        Why cancel rather than adopt: the killed run's engine is gone, so nothing would collect a job's result or
        record it; its task reruns from a clean start instead (finished tasks were recorded and are not rerun).
        Why wait: a cancel is asynchronous (SLURM ends a job's processes after KillWait), and the rerun's job for the
        same task must never write its outputs while the old one still does."""
        found = self.jobs_of_run(run_id)
        if not found:
            log.info("run %s left no job on the %s scheduler", run_id, self.name)
            return []
        log.warning("run %s (killed) left %d job(s) on the %s scheduler; cancelling them before anything is submitted: %s",
                    run_id, len(found), self.name, ", ".join(found))
        self.cancel_run(run_id, found)
        deadline = time.monotonic() + wait_s
        left = self.jobs_of_run(run_id)
        while left and time.monotonic() < deadline:
            time.sleep(poll_s)
            left = self.jobs_of_run(run_id)
        if left:
            raise PortaflowError(f"jobs {', '.join(left)} of the killed run {run_id} are still listed by the {self.name} scheduler "
                                 f"{wait_s:.0f} s after they were cancelled; they may still write this run's outputs. Cancel them "
                                 "(or wait for them to end), then run again")
        log.warning("cancelled the %d job(s) of run %s; their tasks rerun in this run", len(found), run_id)
        return found
    def accounting(self, job_ids: list[str]) -> dict[str, JobUsage]:
        """What the scheduler's accounting says each job used (queue wait, CPU, memory), for `portaflow report`; a job it
        knows nothing of is left out. Nothing by default: no accounting (the report then says "not measured")."""
        return {}

    def connection_problems(self) -> list[str]:
        """Why jobs cannot be submitted from this machine now (empty: the scheduler answers). Asked before a
        run submits anything, and by the matrix to decide between running and rendering a cell."""
        return []

    def compare_profile(self, partitions: list[str]) -> list[SiteFinding]:
        """Compare what the profile says of these partitions (their existence and limits, accounts, QOS, the scheduler's
        servers) with what the scheduler itself reports, without submitting anything. Why an adapter method: only the
        adapter knows which tool answers and how to read it (`portaflow site check` only prints the findings). The
        default cannot compare: one finding saying so."""
        return [SiteFinding("the profile against the scheduler", UNCHECKED,
                            why=f"the {self.name} adapter has no comparison of a profile with its site")]

    def submit_probe(self, partition: str, request: TaskResources, script: Path, output: Path, tag: str) -> ProbeJob:
        """Submit `script` (bash, written by `portaflow site check`) as one job of size `request` on `partition`, its
        output to `output`, tagged with `tag` (cancel_run(tag, ...) finds it). Why an adapter method: the check asks
        each partition for a job exactly as a run would, through the scheduler's own directives. The default
        refuses: a scheduler whose adapter cannot start a job from this machine (`probe_unavailable`)."""
        raise ProbeUnavailable(self.probe_unavailable() or f"scheduler {self.name}: no probe job")

    def probe_unavailable(self) -> str | None:
        """Why `portaflow site check` cannot submit probes through this adapter (None: it can). Asked before anything
        is submitted, so that a scheduler without probes is refused at once rather than after a connection check."""
        return (f"site check: probe jobs are not available for scheduler {self.name} (site {self.site.name}): its adapter "
                "cannot submit a job from here; nothing was submitted (`portaflow render` writes what a run would hand it, "
                "checked with the scheduler's own parser)")

    def probe_states(self, jobs: list[ProbeJob]) -> dict[str, str]:
        """The scheduler's state of each probe job still queued or running (job id -> e.g. 'PENDING (Resources)');
        a job missing from the answer has ended. Asked while `site check` waits, to say why a probe did not report."""
        return {}

    def check_rendered(self, files: list[Path]) -> list[str]:
        """Problems the scheduler's own tools find in rendered files (job scripts, submit descriptions,
        manifests). Why: a site that cannot be reached from here is still checked as far as offline
        tools allow, e.g. in the portability matrix's rendered-only cells."""
        return []

    def unverifiable_here(self) -> list[str]:
        """What the profile uses that `check_rendered` cannot check on this machine (the site's own plugins' options):
        `validate` and the portability matrix say so instead of failing or passing it silently."""
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
                        "set it through the profile's own key (partition limits, account, clusters, slurm.qos, slurm.memory_rule, "
                        "slurm.gpu_syntax) or "
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

    def image_variable_problems(self, who: str, hint: str) -> list[Problem]:
        """Image locations (`container.images`, `container.image_dir`) that name a `$VARIABLE` where the scheduler itself
        reads the image name (an HTCondor job attribute, a pod's image): no shell expands it there, so the job would
        look for a literal `$PROJECT/...`. Each at its line (`who`: which part reads the name)."""
        settings = self.site.container
        places = [(("container", "images", name), value) for name, value in settings.images.items()]
        places += [(("container", "image_dir"), settings.image_dir)] if settings.image_dir else []
        return [self.loaded.problem(keypath, f"{value!r} names ${', $'.join(variables(value))}, which {who} does not expand "
                                             "(no shell reads the image name there)", hint)
                for keypath, value in places if variables(value)]

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


def snakemake_jobname_prefix(run_id: str) -> str:
    """The job name prefix Snakemake's SLURM plugin is given (`slurm-jobname-prefix`; it names each job
    `<prefix>_<uuid>` and sets its own comment), so that a rerun finds a killed run's jobs by it as it finds Parsl's
    by their comment. The plugin accepts letters, digits, `_` and `-` (up to 50), as run ids are written."""
    return "portaflow-" + re.sub(r"[^A-Za-z0-9_-]", "-", run_id)[:40]


def max_jobs_at_once(site: Any, engine_limit: int) -> int:
    """How many jobs an engine may have queued at once: its own limit, never above the site's polling etiquette."""
    return min(engine_limit, site.polling.max_queued_jobs)


@dataclass(frozen=True)
class SubmitRate:
    """At most `jobs` submissions in any `seconds` (the site's `polling.submit_rate`)."""

    jobs: int
    seconds: int

    def snakemake_value(self) -> str:
        """Snakemake's `--max-jobs-per-timespan` for it ('10/60s')."""
        return f"{self.jobs}/{self.seconds}s"


def submit_rate(site: Any) -> SubmitRate | None:
    """The site's submission pace, read by both engines: Snakemake as `--max-jobs-per-timespan`, Parsl's executors through
    one shared `SubmitWindow` (engines/parsl_engine.py). None: no pace beyond the engines' own."""
    text = site.polling.submit_rate
    if not text:
        return None
    jobs, _, span = text.partition("/")
    return SubmitRate(int(jobs), parse_walltime_seconds(span))


class SubmitWindow:
    """A sliding window over submissions: at most `rate.jobs` in any `rate.seconds`, shared by every executor of a run.
    `clock` is injectable so that the rule can be tested without waiting."""

    def __init__(self, rate: SubmitRate, clock: Callable[[], float] = time.monotonic):
        self.rate, self.clock = rate, clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """How many of `wanted` submissions may go now (each one granted is counted at once)."""
        with self._lock:
            now = self.clock()
            while self._times and now - self._times[0] >= self.rate.seconds:
                self._times.popleft()
            granted = max(0, min(wanted, self.rate.jobs - len(self._times)))
            self._times.extend([now] * granted)
            return granted


class PartitionJobs:
    """A partition's per-user job limit kept by all of a run's Parsl executors on it together: each executor's blocks
    are jobs there, and an executor scales out only into the room its partition has left. Why: each executor needs at
    least one block to run its tasks, so with more executors (resource classes) than the limit, `max_blocks` shares
    alone would queue more jobs than the site allows (sbatch refuses them past MaxSubmitJobsPerUser); with this gate
    the executors take turns, as Snakemake's rules do under the same limit (`job_slot_resources`).
    Each member is a callable that counts one executor's live (not finished) blocks, so the count is always Parsl's own."""

    def __init__(self, partition: str, limit: int):
        self.partition, self.limit = partition, limit
        self._members: list[Callable[[], int]] = []
        self._lock = threading.Lock()

    def join(self, live_blocks: Callable[[], int]) -> None:
        """Count one more executor's live blocks against the limit."""
        self._members.append(live_blocks)

    def room(self) -> int:
        """How many more blocks fit under the limit now."""
        return max(0, self.limit - sum(count() for count in self._members))

    def admit(self, wanted: int, submit: Callable[[int], list[str]]) -> list[str]:
        """Submit (`submit(n)`, the executor's own scale-out) as many of `wanted` blocks as fit; the lock is held until
        they are recorded, so two executors never both take the last room."""
        with self._lock:
            granted = min(wanted, self.room())
            return submit(granted) if granted > 0 else []


def parsl_partition_gates(site: Any) -> dict[str, PartitionJobs]:
    """One gate per limited partition (`partition_job_limits`), shared by that partition's Parsl executors of a run."""
    return {name: PartitionJobs(name, limit) for name, limit in partition_job_limits(site).items()}


def partition_job_limits(site: Any) -> dict[str, int]:
    """Partition -> how many of a run's jobs may be queued or running there at once: its `max_jobs_per_user` (the
    site's QOS MaxSubmitJobsPerUser / MaxJobsPerUser), never above the site's `polling.max_queued_jobs`. Both engines
    read it here: Parsl shares it among the executors of the partition (`parsl_blocks.block_sizing`), Snakemake
    counts it as a global resource every rule of the partition takes one of (`job_slot_resources`)."""
    return {name: min(part.max_jobs_per_user, site.polling.max_queued_jobs)
            for name, part in site.partitions.items() if part.max_jobs_per_user is not None}


def job_slot_resource(partition: str) -> str:
    """The Snakemake resource that counts a run's jobs on one partition (`--resources` caps it). Snakemake's resource
    names are identifiers: a partition name with other characters (`gpu-l40s`) gets them replaced and a short digest
    of the name, so two partitions never share a count."""
    word = re.sub(r"[^A-Za-z0-9_]", "_", partition)
    return f"portaflow_jobs_{word}" if word == partition else f"portaflow_jobs_{word}_{hashlib.sha256(partition.encode()).hexdigest()[:6]}"


def job_slot_resources(site: Any, task: Task) -> dict[str, int]:
    """A Snakemake rule's share of its partition's job limit: one slot, where the partition has a limit."""
    return {job_slot_resource(task.partition): 1} if task.partition in partition_job_limits(site) else {}


def snakemake_job_limits(site: Any) -> list[str]:
    """Snakemake's `--resources` for the partition job limits (`partition_job_limits`): NAME=LIMIT per limited partition."""
    return [f"{job_slot_resource(name)}={limit}" for name, limit in sorted(partition_job_limits(site).items())]
