"""Parsl: the plan becomes a Config (one executor per resource class) and bash apps wired by futures.

Each resource class (partition, cores, memory, GPUs) gets its own HighThroughputExecutor whose
provider asks the scheduler for blocks of exactly that size. What differs per scheduler (the provider,
how many workers a block holds, what `render` captures) comes from the site's scheduler adapter
(`ctx.scheduler`); this module builds the Config, runs the bash apps and reports failures.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import time
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

from portaflow.engines.base import Engine, RunContext, TaskOutcome, failure_message, not_run_message, remove_outputs
from portaflow.engines.leftovers import stop_run_processes
from portaflow.plan.model import Task, TaskResources
from portaflow.schedulers.base import PartitionJobs, SubmitWindow, parsl_partition_gates, submit_rate
from portaflow.schedulers.parsl_blocks import (
    block_sizing,
    driver_path_line,
    resource_classes as resource_classes,  # where tests and benchmarks look
    run_classes,
)
from portaflow.units import format_walltime

log = logging.getLogger(__name__)


def classes(ctx: RunContext) -> dict[str, list[Task]]:
    """The run's resource classes (by container too where a block is one image, e.g. a Kubernetes pod)."""
    return run_classes(ctx)


@functools.cache
def paced_executor_class() -> type:
    """A HighThroughputExecutor whose scaling out keeps the site's limits, shared with the run's other executors:
    - the partition's per-user job limit (`partition_gate`, a `PartitionJobs`): only as many new blocks as the partition
      has room for beside the live blocks of every executor there, so executors beyond the limit take turns;
    - the submission pace (`polling.submit_rate`): only as many as the run's shared `SubmitWindow` grants, the same pace
      Snakemake gets as --max-jobs-per-timespan.
    What is not granted now, Parsl's strategy asks for again at its next round (every `polling.interval`)."""
    from parsl.executors import HighThroughputExecutor

    class PacedHighThroughputExecutor(HighThroughputExecutor):
        submit_window: SubmitWindow | None = None
        partition_gate: PartitionJobs | None = None

        def live_blocks(self) -> int:
            """This executor's blocks that are queued or running (Parsl's own record of them)."""
            return sum(1 for status in self.status_facade.values() if not status.terminal)

        def scale_out_facade(self, n: int) -> list[str]:
            if self.partition_gate is None:
                return self._paced(n)
            started = self.partition_gate.admit(n, self._paced)
            if len(started) < n:
                log.info("Parsl executor %s: %d of %d block(s) wait for room on partition %s (%d job(s) per user)", self.label,
                         n - len(started), n, self.partition_gate.partition, self.partition_gate.limit)
            return started

        def _paced(self, n: int) -> list[str]:
            granted = self.submit_window.take(n) if self.submit_window else n
            if granted < n:
                log.info("Parsl executor %s: %d of %d block(s) wait for the site's submit rate", self.label, n - granted, n)
            return super().scale_out_facade(granted) if granted else []

    return PacedHighThroughputExecutor


@functools.cache
def thread_executor_class() -> type:
    """Parsl's ThreadPoolExecutor that, when the run is being stopped, stops the run's step processes first.

    Why: a thread cannot be cancelled, and Parsl's shutdown waits for every running bash app, that is for its step to
    end (a worker pool is instead stopped with its process group). The run's processes on this host carry its run id
    (`engines.leftovers`): SIGTERM reaches each step's shell, the step ends, its thread returns, the shutdown ends.
    A run that ends normally has no task running when it shuts down, so nothing is stopped then."""
    from parsl.executors import ThreadPoolExecutor

    class StoppingThreadPoolExecutor(ThreadPoolExecutor):
        portaflow_run_id: str | None = None  # (Parsl sets `run_id`: its own)

        def start(self) -> None:
            super().start()
            self.running: set[Future] = set()

        def submit(self, func: Any, resource_specification: dict, *args: Any, **kwargs: Any) -> Future:
            future = super().submit(func, resource_specification, *args, **kwargs)
            self.running.add(future)
            future.add_done_callback(self.running.discard)
            return future

        def shutdown(self, block: bool = True) -> None:
            if self.running and self.portaflow_run_id:
                log.info("Parsl executor %s: stopping the %d step(s) still running", self.label, len(self.running))
                stop_run_processes(self.portaflow_run_id)
            super().shutdown(block=block)

    return StoppingThreadPoolExecutor


INTERCHANGE_LAUNCH = [sys.executable, "-c", "import os, runpy; os.setpgid(0, 0); "
                      "runpy.run_module('parsl.executors.high_throughput.interchange', run_name='__main__', alter_sys=True)"]
"""`python -m parsl.executors.high_throughput.interchange`, in a process group of its own."""


class ParslEngine(Engine):
    name = "parsl"

    # -- configuration -------------------------------------------------------------------------
    def config(self, ctx: RunContext, resolve_address: bool = True) -> Any:
        """A Parsl Config for the chosen tasks (rendering elsewhere leaves an interface's address unresolved)."""
        from parsl.config import Config

        groups = classes(ctx)
        max_retries = max((t.retries for t in ctx.tasks), default=0)
        address = self._address(ctx, resolve_address)
        rate = submit_rate(ctx.site)
        window = SubmitWindow(rate) if rate else None  # one window for all executors: the pace is the site's, per run
        # one gate per limited partition, shared by its executors (blocks on the local site are not jobs: no limit applies)
        gates = parsl_partition_gates(ctx.site) if ctx.scheduler.blocks_are_jobs else {}
        executors = [self._executor(ctx, label, tasks, address, resolve_address, window, gates.get(tasks[0].partition))
                     for label, tasks in groups.items()]
        return Config(
            executors=executors,
            run_dir=str(ctx.run_dir / "parsl"),
            retries=max_retries,
            retry_handler=retry_cost(max_retries),
            strategy="simple",
            strategy_period=float(ctx.site.polling.interval),  # paces scaling; SlurmProvider polls block status itself every 60 s (one batched sacct)
            max_idletime=5.0,
            initialize_logging=True,
        )

    def _executor(self, ctx: RunContext, label: str, tasks: list[Task], address: str, resolve_address: bool,
                  window: SubmitWindow | None = None, gate: PartitionJobs | None = None) -> Any:
        from parsl.executors import HighThroughputExecutor
        from parsl.jobs.error_handlers import simple_error_handler, windowed_error_handler

        site = ctx.site
        if ctx.scheduler.parsl_threads:
            executor = thread_executor_class()(label=label, max_threads=ctx.scheduler.parsl_executor_options(ctx, tasks)["max_workers_per_node"])
            executor.portaflow_run_id = ctx.run_id
            return executor
        executor_class = paced_executor_class() if window or gate else HighThroughputExecutor
        provider = ctx.scheduler.parsl_provider(ctx, label, tasks, offline=not resolve_address)
        sizing = block_sizing(ctx, tasks)
        if resolve_address:
            log.info("Parsl executor %s: %s", label, sizing.note)
        executor = executor_class(
            label=label,
            provider=provider,
            # Where a block is a job: given up only when its last 3 blocks all failed. Parsl's default gives up when every
            # block so far failed, so a run whose one block lost its node failed every task at once, whatever their
            # `retries` (tests/slurm/test_multinode.py); a broken job set-up still ends the run after 3 blocks.
            block_error_handler=windowed_error_handler if ctx.scheduler.blocks_are_jobs else simple_error_handler,
            **ctx.scheduler.parsl_executor_options(ctx, tasks),
            address=address,
            worker_logdir_root=str(ctx.run_dir / "parsl" / "workers"),
            # When running: this Python's interchange, found without changing the driver's PATH (render shows Parsl's default),
            # in a process group of its own: the terminal's Ctrl-C reaches the driver, which stops it (it used to reach the
            # interchange too, which died, and the driver's clean-up then waited on it for ever).
            **({"interchange_launch_cmd": INTERCHANGE_LAUNCH} if resolve_address else {}),
            # workers stop taking tasks in time for the longest to finish inside the block (None: a block per task)
            drain_period=sizing.drain_period_s,
            heartbeat_period=5,
            heartbeat_threshold=60,
            **({"worker_port_range": site.network.port_range, "interchange_port_range": site.network.port_range}
               if site.network.port_range else {}),
        )
        if window:
            executor.submit_window = window
        if gate:
            executor.partition_gate = gate
            gate.join(executor.live_blocks)
        return executor

    def _address(self, ctx: RunContext, resolve: bool) -> str:
        """Where workers reach the interchange (which listens there): `addresses.choose_address`, the rule Dask's
        scheduler follows too, asked once per run on the driver with the hosts the scheduler says the run's
        workers use; recorded on the context for the manifest. Rendering (no run, maybe no scheduler) shows
        the profile's address, or says what will be chosen."""
        network = ctx.site.network
        if not resolve:
            if network.address:
                return network.address
            if network.interface:
                return f"<address of {network.interface} on the driver>"
            if not ctx.scheduler.blocks_are_jobs:  # blocks are processes here (the local site): loopback is right
                return "127.0.0.1"
            return "<the driver's address toward the compute nodes, chosen when the run starts>"
        from portaflow.addresses import choose_address

        choice = choose_address(address=network.address, interface=network.interface,
                                peers=ctx.scheduler.worker_hosts(ctx, ctx.tasks), what="Parsl workers")
        ctx.driver_address = choice.as_record()
        return choice.address

    # -- rendering -----------------------------------------------------------------------------
    def render(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        """The Parsl config (as text), each task's bash command, and each block's real job script.

        Job scripts come from the provider's own submit(): portaflow calls it with a recording
        stand-in for the one call that would reach the scheduler (the adapter's render_parsl_blocks), so the
        file is exactly what Parsl would hand to SLURM, HTCondor or Kubernetes.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        groups = classes(ctx)
        header = [f"# The Parsl Config portaflow hands to parsl.load() (Parsl's own repr), for site {ctx.site.name}.",
                  "# Executors, one per resource class:"]
        for label, tasks in groups.items():
            header.append(f"#   {label}: {len(tasks)} task(s); partition {tasks[0].partition}; " + _describe(tasks[0].resources))
            header.append(f"#     blocks: {block_sizing(ctx, tasks).note}")
        config_repr = re.sub(r" at 0x[0-9a-f]+", "", repr(self.config(ctx, resolve_address=False)))  # object addresses vary run to run
        path = out_dir / "parsl_config.txt"
        path.write_text("\n".join(header) + "\n" + config_repr + "\n")
        written.append(path)
        apps = out_dir / "apps"
        apps.mkdir(exist_ok=True)
        for task in ctx.tasks:
            p = apps / f"{task.id}.sh"
            p.write_text(ctx.shell_line(task) + "\n")
            written.append(p)
        written += ctx.scheduler.render_parsl_blocks(ctx, groups, out_dir)
        return written

    # -- running -------------------------------------------------------------------------------
    def execute(self, ctx: RunContext) -> dict[str, TaskOutcome]:
        import parsl
        from parsl.app.app import bash_app

        groups = classes(ctx)
        label_of = {t.id: label for label, tasks in groups.items() for t in tasks}
        dfk = parsl.load(self.config(ctx))
        # in threads, a task's shell starts from the driver's environment, not from a block's set-up (`worker_init`)
        prelude = driver_path_line() + "\n" if ctx.scheduler.parsl_threads else ""
        apps = {label: bash_app(_run_line, executors=[label], data_flow_kernel=dfk) for label in groups}
        futures: dict[str, Future] = {}
        outcomes: dict[str, TaskOutcome] = {}
        try:
            for task in ctx.tasks:
                deps = [futures[d] for d in task.depends if d in futures]
                log = ctx.log_path(task)
                log.parent.mkdir(parents=True, exist_ok=True)
                future = apps[label_of[task.id]](
                    prelude + ctx.shell_line(task), inputs=deps, stdout=str(log), stderr=str(log), portaflow_retries=task.retries,
                    portaflow_block_file=str(_block_file(ctx, task)),
                    portaflow_stop_file=None if ctx.keep_going else str(_stop_file(ctx)),
                )
                ctx.on_event("submitted", task, None)
                executor = dfk.executors[label_of[task.id]]
                future.add_done_callback(lambda f, t=task, e=executor: self._finished(ctx, t, f, outcomes, e))
                futures[task.id] = future
                ctx.raise_if_stopped()
            while wait(list(futures.values()), timeout=0.25).not_done:
                ctx.raise_if_stopped()
        finally:
            if ctx.scheduler.blocks_are_jobs:
                for executor in dfk.executors.values():
                    provider = getattr(executor, "provider", None)
                    ctx.jobs.extend(str(j) for j in getattr(provider, "resources", {}) if str(j) not in ctx.jobs)
            dfk.cleanup()
            parsl.clear()
        return outcomes

    def _finished(self, ctx: RunContext, task: Task, future: Future, outcomes: dict[str, TaskOutcome], executor: Any = None) -> None:
        exc = future.exception()
        if exc is not None and ctx.stop_signal is not None:  # stopped by the run's own interrupt: not run, not failed
            return
        if exc is None:  # the job it ran in, for the report's accounting
            outcome = TaskOutcome(task.id, True, 0, job_id=_block_job(ctx, executor, _ran_in_block(ctx, task)))
        else:
            remove_outputs(ctx.workdir, task)
            outcome = self._failure(ctx, task, exc, outcomes, executor)
        outcome.started, outcome.finished = _started(ctx, task), time.time()
        outcomes[task.id] = outcome
        ctx.on_event("finished", task, outcome)

    def _failure(self, ctx: RunContext, task: Task, exc: BaseException, outcomes: dict[str, TaskOutcome], executor: Any) -> TaskOutcome:
        code = getattr(exc, "exitcode", None)
        name = type(exc).__name__
        if name == "DependencyError":
            return TaskOutcome(task.id, False, code, message=not_run_message(ctx, task, set(task.depends), False))
        if name == "BashExitFailure" and code == NOT_STARTED_EXIT and _stop_file(ctx).exists():
            return TaskOutcome(task.id, False, None, message=not_run_message(ctx, task, set(), True))
        if not ctx.keep_going:  # --fail-fast: the workers start no task from now on (_run_line)
            _stop_file(ctx).touch()
        if name == "BashExitFailure":
            block = _ran_in_block(ctx, task)
            message = failure_message(code, task) + (f" (in Parsl block {block} of executor {executor.label})" if block and executor else "")
            return TaskOutcome(task.id, False, code, job_id=_block_job(ctx, executor, block), message=message)
        return TaskOutcome(task.id, False, code, message=f"{name}: {exc}")


NOT_STARTED_EXIT = 75
"""What a task the run no longer starts (--fail-fast) exits with; it counts only while the stop file exists."""


def _stop_file(ctx: RunContext) -> Path:
    """Exists once a task failed under --fail-fast: the bash apps then start nothing more."""
    return ctx.run_dir / "stop"


def _run_line(line: str, inputs: tuple = (), stdout: str | None = None, stderr: str | None = None, portaflow_retries: int = 0,
              portaflow_block_file: str | None = None, portaflow_stop_file: str | None = None) -> str:
    """The bash app: its return value is the command Parsl runs.

    It runs on the worker, before the command: it notes the block the worker belongs to (Parsl's worker
    pool sets PARSL_WORKER_BLOCK_ID), because Parsl's result carries no trace of where a task ran, and a
    failure report must name the block's scheduler job. A note that cannot be written only costs that.
    Under --fail-fast, once a task failed (the stop file exists), it starts nothing: the command exits NOT_STARTED_EXIT.
    """
    if portaflow_stop_file and os.path.exists(portaflow_stop_file):
        return f"echo 'portaflow: not started: an earlier task failed (--fail-fast)' >&2; exit {NOT_STARTED_EXIT}"
    if portaflow_block_file:
        try:
            Path(portaflow_block_file).parent.mkdir(parents=True, exist_ok=True)
            Path(portaflow_block_file).write_text(os.environ.get("PARSL_WORKER_BLOCK_ID", ""))
        except OSError:
            pass
    return line


def _block_file(ctx: RunContext, task: Task) -> Path:
    """Where the worker notes which Parsl block ran the task (its last try)."""
    return ctx.run_dir / "blocks" / task.id


def _ran_in_block(ctx: RunContext, task: Task) -> str | None:
    """The Parsl block id that ran the task's last try, or None when no worker noted one."""
    try:
        return _block_file(ctx, task).read_text().strip() or None
    except OSError:
        return None


def _started(ctx: RunContext, task: Task) -> float | None:
    """When the task's last try began on its worker: the time the bash app noted its block (just before the command),
    or None when no worker ran it (a task not run because one upstream failed)."""
    try:
        return _block_file(ctx, task).stat().st_mtime
    except OSError:
        return None


def _block_job(ctx: RunContext, executor: Any, block: str | None) -> str | None:
    """The scheduler's job id of a block (Parsl's blocks_to_job_id); none on the local site, where it is a process."""
    if block is None or executor is None or not ctx.scheduler.blocks_are_jobs:
        return None
    job = getattr(executor, "blocks_to_job_id", {}).get(block)
    return str(job) if job is not None else None


def retry_cost(max_retries: int):
    """Per-task retries on top of Parsl's global budget: a task allowed k retries costs max/k a failure.

    A task whose block's worker manager was lost (ManagerLost: the node went away, or the manager missed its
    heartbeats on an overloaded machine) did not fail by itself: it gets one more try for free, as a scheduler
    would requeue it. A second loss counts like any failure.
    """
    from parsl.executors.high_throughput.errors import ManagerLost

    def handler(exception: BaseException, task_record: dict) -> float:
        if isinstance(exception, ManagerLost) and not task_record.get("portaflow_manager_lost"):
            task_record["portaflow_manager_lost"] = True
            return 0.0
        stop = task_record["kwargs"].get("portaflow_stop_file")
        if stop and os.path.exists(stop):  # --fail-fast after a failure: no more tries
            return max_retries + 1
        allowed = task_record["kwargs"].get("portaflow_retries", 0)
        return max_retries / allowed if allowed else max_retries + 1

    return handler


def _describe(r: TaskResources) -> str:
    text = f"cores={r.cores} memory={r.memory_mib}MiB walltime={format_walltime(r.walltime_s)}"
    return text + (f" gpus={r.gpus}" if r.gpus else "") + (f" gpu_model={r.gpu_model}" if r.gpu_model else "")
