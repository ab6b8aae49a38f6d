"""Parsl: the plan becomes a Config (one executor per resource class) and bash apps wired by futures.

Each resource class (partition, cores, memory, GPUs) gets its own HighThroughputExecutor whose
provider asks the scheduler for blocks of exactly that size: LocalProvider on the local site,
SlurmProvider on SLURM sites, with the sbatch options from `portaflow.schedulers.slurm`.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

from portaflow.engines.base import Engine, RunContext, TaskOutcome, failure_message, remove_outputs
from portaflow.plan.model import Task, TaskResources
from portaflow.units import format_walltime

_STRIP_FOR_PARSL = ("--time", "--nodes", "--ntasks", "--job-name", "--output", "--error")
"""sbatch options Parsl's own template writes: passing them again would give two conflicting values."""


def resource_classes(tasks: list[Task]) -> dict[str, list[Task]]:
    """Group tasks by what they ask of the scheduler; each group becomes one executor."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        r = task.resources
        label = f"{task.partition}_c{r.cores}_m{r.memory_mib}_g{r.gpus}" + (f"_{r.gpu_model}" if r.gpu_model else "") + (f"_n{r.nodes}" if r.nodes > 1 else "")
        groups.setdefault(re.sub(r"[^A-Za-z0-9_]", "_", label), []).append(task)
    return groups


class ParslEngine(Engine):
    name = "parsl"

    # -- configuration -------------------------------------------------------------------------
    def config(self, ctx: RunContext, resolve_address: bool = True) -> Any:
        """A Parsl Config for the chosen tasks (rendering elsewhere leaves an interface's address unresolved)."""
        from parsl.config import Config

        groups = resource_classes(ctx.tasks)
        max_retries = max((t.retries for t in ctx.tasks), default=0)
        executors = [self._executor(ctx, label, tasks, resolve_address) for label, tasks in groups.items()]
        return Config(
            executors=executors,
            run_dir=str(ctx.run_dir / "parsl"),
            retries=max_retries,
            retry_handler=_retry_cost(max_retries),
            strategy="simple",
            strategy_period=float(ctx.site.polling.interval),  # how often block status is polled (one batched query)
            max_idletime=5.0,
            initialize_logging=True,
        )

    def _executor(self, ctx: RunContext, label: str, tasks: list[Task], resolve_address: bool) -> Any:
        from parsl.executors import HighThroughputExecutor

        request = tasks[0].resources
        site = ctx.site
        accelerators = [str(i) for i in range(request.gpus)] if request.gpus and site.scheduler == "local" else []
        if site.scheduler == "local":
            part = site.partitions[tasks[0].partition]
            workers = max(1, min(part.cores_per_node // request.cores, part.memory_per_node // max(request.memory_mib, 1)))
            provider = self._local_provider(ctx)
        elif site.scheduler == "slurm":
            workers = 1
            provider = self.slurm_provider(ctx, request, tasks[0].partition, max(t.resources.walltime_s for t in tasks), label)
        else:
            raise NotImplementedError(f"Parsl engine: scheduler {site.scheduler} is not supported yet")
        return HighThroughputExecutor(
            label=label,
            provider=provider,
            max_workers_per_node=workers,
            cores_per_worker=request.cores if site.scheduler == "local" else 1,
            address=self._address(ctx, resolve_address),
            worker_logdir_root=str(ctx.run_dir / "parsl" / "workers"),
            available_accelerators=accelerators,
            heartbeat_period=5,
            heartbeat_threshold=60,
            **({"worker_port_range": site.network.port_range, "interchange_port_range": site.network.port_range}
               if site.network.port_range else {}),
        )

    def _address(self, ctx: RunContext, resolve: bool) -> str:
        """Where workers reach the interchange: the profile's address, or its interface's (read on the driver)."""
        network = ctx.site.network
        if network.address:
            return network.address
        if network.interface and not resolve:
            return f"<address of {network.interface} on the driver>"
        if network.interface:
            from parsl.addresses import address_by_interface

            return address_by_interface(network.interface)
        return "127.0.0.1"

    def _worker_init(self, ctx: RunContext) -> str:
        """Workers need the driver's Python environment first on PATH (Parsl finds its scripts there)."""
        site = ctx.site
        lines = [f"module load {m}" for m in site.environment.modules]
        lines += list(site.environment.worker_init)
        if not site.environment.worker_init:  # no environment of the site's own: reuse the driver's
            lines.append(f"export PATH={Path(os.sys.executable).parent}:$PATH")
        return "\n".join(lines)

    def _local_provider(self, ctx: RunContext) -> Any:
        from parsl.providers import LocalProvider

        return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=self._worker_init(ctx))

    def slurm_provider(self, ctx: RunContext, request: TaskResources, partition: str, walltime_s: int, label: str) -> Any:
        """A SlurmProvider whose blocks are jobs of exactly this resource class's size."""
        from parsl.launchers import SingleNodeLauncher, SrunLauncher
        from parsl.providers import SlurmProvider

        site = ctx.site
        directives = [d for d in ctx.scheduler.directives(request, partition) if d.split("=")[0] not in _STRIP_FOR_PARSL]
        directives.append(f"--comment=portaflow:{ctx.run_id}")
        provider = SlurmProvider(
            partition=None,
            nodes_per_block=request.nodes,
            init_blocks=site.parsl.init_blocks,
            min_blocks=0,
            max_blocks=min(site.parsl.max_blocks, site.polling.max_queued_jobs),
            walltime=format_walltime(-(-walltime_s // 60) * 60),  # Parsl writes whole minutes; never 0
            scheduler_options="\n".join(f"#SBATCH {d}" for d in directives),
            worker_init=self._worker_init(ctx),
            exclusive=False,
            launcher=SrunLauncher() if site.parsl.launcher == "srun" else SingleNodeLauncher(),
        )
        return provider

    # -- rendering -----------------------------------------------------------------------------
    def render(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        """The Parsl config (as text), each task's bash command, and each block's real job script.

        Job scripts come from the provider's own submit(): portaflow calls it with a recording
        stand-in for the `sbatch` call, so the file is exactly what Parsl would hand to SLURM.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        header = [f"# The Parsl Config portaflow hands to parsl.load() (Parsl's own repr), for site {ctx.site.name}.",
                  "# Executors, one per resource class:"]
        for label, tasks in resource_classes(ctx.tasks).items():
            header.append(f"#   {label}: {len(tasks)} task(s); partition {tasks[0].partition}; " + _describe(tasks[0].resources))
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
        if ctx.site.scheduler == "slurm":
            written += self._render_slurm_blocks(ctx, out_dir / "jobs")
        return written

    def _render_slurm_blocks(self, ctx: RunContext, jobs_dir: Path) -> list[Path]:
        jobs_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for label, tasks in resource_classes(ctx.tasks).items():
            walltime = max(t.resources.walltime_s for t in tasks)
            provider = self.slurm_provider(ctx, tasks[0].resources, tasks[0].partition, walltime, label)
            provider.script_dir = str(jobs_dir)
            submitted: list[str] = []

            def record(cmd: str, timeout: int | None = None, _s: list[str] = submitted) -> tuple[int, str, str]:
                _s.append(cmd)
                return 0, "Submitted batch job 0", ""

            provider.execute_wait = record  # the one call that would reach SLURM
            placeholder = f"process_worker_pool.py --label {label} ...  # Parsl adds the interchange address and ports when it starts"
            provider.submit(placeholder, tasks_per_node=1, job_name=f"parsl.{label}")
            script = next(p for p in Path(jobs_dir).glob(f"parsl.{label}.*") if p.suffix not in (".stdout", ".stderr"))
            final = jobs_dir / f"{label}.sbatch"
            # The job name carries Parsl's submit timestamp: replaced so golden files stay stable.
            text = re.sub(r"(parsl\.[A-Za-z0-9_]+)\.\d+\.\d+", r"\1.<time>", script.read_text())
            final.write_text(text + f"\n# submitted with: {submitted[0]}\n".replace(str(script), str(final)))
            script.unlink()
            written.append(final)
        return written

    # -- running -------------------------------------------------------------------------------
    def execute(self, ctx: RunContext) -> dict[str, TaskOutcome]:
        import parsl
        from parsl.app.app import bash_app

        os.environ["PATH"] = f"{Path(os.sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        groups = resource_classes(ctx.tasks)
        label_of = {t.id: label for label, tasks in groups.items() for t in tasks}
        dfk = parsl.load(self.config(ctx))
        apps = {label: bash_app(_run_line, executors=[label], data_flow_kernel=dfk) for label in groups}
        futures: dict[str, Future] = {}
        outcomes: dict[str, TaskOutcome] = {}
        try:
            for task in ctx.tasks:
                deps = [futures[d] for d in task.depends if d in futures]
                log = ctx.log_path(task)
                log.parent.mkdir(parents=True, exist_ok=True)
                future = apps[label_of[task.id]](
                    ctx.shell_line(task), inputs=deps, stdout=str(log), stderr=str(log), portaflow_retries=task.retries,
                )
                ctx.on_event("submitted", task, None)
                future.add_done_callback(lambda f, t=task: self._finished(ctx, t, f, outcomes))
                futures[task.id] = future
            wait(list(futures.values()))
        finally:
            if ctx.site.scheduler != "local":
                for executor in dfk.executors.values():
                    provider = getattr(executor, "provider", None)
                    ctx.jobs.extend(str(j) for j in getattr(provider, "resources", {}) if str(j) not in ctx.jobs)
            dfk.cleanup()
            parsl.clear()
        return outcomes

    def _finished(self, ctx: RunContext, task: Task, future: Future, outcomes: dict[str, TaskOutcome]) -> None:
        exc = future.exception()
        if exc is None:
            outcome = TaskOutcome(task.id, True, 0)
        else:
            remove_outputs(ctx.workdir, task)
            code = getattr(exc, "exitcode", None)
            name = type(exc).__name__
            if name == "DependencyError":
                message = "not run: a task it depends on failed"
            elif name == "BashExitFailure":
                message = failure_message(code, task)
            else:
                message = f"{name}: {exc}"
            outcome = TaskOutcome(task.id, False, code, message=message)
        outcomes[task.id] = outcome
        ctx.on_event("finished", task, outcome)


def _run_line(line: str, inputs: tuple = (), stdout: str | None = None, stderr: str | None = None, portaflow_retries: int = 0) -> str:
    """The bash app: its return value is the command Parsl runs."""
    return line


def _retry_cost(max_retries: int):
    """Per-task retries on top of Parsl's global budget: a task allowed k retries costs max/k a failure."""

    def handler(exception: BaseException, task_record: dict) -> float:
        allowed = task_record["kwargs"].get("portaflow_retries", 0)
        return max_retries / allowed if allowed else max_retries + 1

    return handler


def _describe(r: TaskResources) -> str:
    text = f"cores={r.cores} memory={r.memory_mib}MiB walltime={format_walltime(r.walltime_s)}"
    return text + (f" gpus={r.gpus}" if r.gpus else "") + (f" gpu_model={r.gpu_model}" if r.gpu_model else "")
