"""Parsl: the plan becomes a Config (one executor per resource class) and bash apps wired by futures.

Each resource class (partition, cores, memory, GPUs) gets its own HighThroughputExecutor whose
provider asks the scheduler for blocks of exactly that size: LocalProvider on the local site,
SlurmProvider on SLURM sites, with the sbatch options from `portaflow.schedulers.slurm`;
CondorProvider on HTCondor pools, with the submit commands from `portaflow.schedulers.htcondor`.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

from portaflow.containers import container_call
from portaflow.engines.base import Engine, RunContext, TaskOutcome, failure_message, remove_outputs
from portaflow.errors import InputError
from portaflow.plan.model import Task, TaskResources
from portaflow.units import format_walltime

_STRIP_FOR_PARSL = ("--time", "--nodes", "--ntasks", "--job-name", "--output", "--error")
"""sbatch options Parsl's own template writes: passing them again would give two conflicting values."""


def resource_classes(tasks: list[Task], by_container: bool = False) -> dict[str, list[Task]]:
    """Group tasks by what they ask of the scheduler; each group becomes one executor.

    `by_container`: where the block is itself a container (a Kubernetes pod has one image), tasks
    in different containers need different blocks.
    """
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        r = task.resources
        label = f"{task.partition}_c{r.cores}_m{r.memory_mib}_g{r.gpus}" + (f"_{r.gpu_model}" if r.gpu_model else "") + (f"_n{r.nodes}" if r.nodes > 1 else "")
        label += f"_{task.container or 'default'}" if by_container else ""
        groups.setdefault(re.sub(r"[^A-Za-z0-9_]", "_", label), []).append(task)
    return groups


def classes(ctx: RunContext) -> dict[str, list[Task]]:
    """The run's resource classes (by container too on Kubernetes, where a block is one image)."""
    return resource_classes(ctx.tasks, by_container=ctx.site.scheduler == "kubernetes" or ctx.scheduler.runs_containers())


class ParslEngine(Engine):
    name = "parsl"

    # -- configuration -------------------------------------------------------------------------
    def config(self, ctx: RunContext, resolve_address: bool = True) -> Any:
        """A Parsl Config for the chosen tasks (rendering elsewhere leaves an interface's address unresolved)."""
        from parsl.config import Config

        groups = classes(ctx)
        max_retries = max((t.retries for t in ctx.tasks), default=0)
        executors = [self._executor(ctx, label, tasks, resolve_address) for label, tasks in groups.items()]
        return Config(
            executors=executors,
            run_dir=str(ctx.run_dir / "parsl"),
            retries=max_retries,
            retry_handler=_retry_cost(max_retries),
            strategy="simple",
            strategy_period=float(ctx.site.polling.interval),  # paces scaling; SlurmProvider polls block status itself every 60 s (one batched sacct)
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
        elif site.scheduler == "htcondor":
            workers = 1
            provider = self.condor_provider(ctx, tasks)
        elif site.scheduler == "kubernetes":
            workers = 1
            provider = self.kubernetes_provider(ctx, tasks, label, offline=not resolve_address)
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

    def condor_provider(self, ctx: RunContext, tasks: list[Task]) -> Any:
        """A CondorProvider whose blocks are jobs of exactly this resource class's size.

        Parsl's template writes the universe, its own script as executable and input file, and an empty
        +projectname; the commands from `schedulers.htcondor` go into scheduler_options, which the template
        puts after its own, so condor_submit uses them. Parsl writes no walltime: the profile's runtime
        attribute or flavour carries it.
        """
        from parsl.providers import CondorProvider

        site, scheduler = ctx.site, ctx.scheduler
        if scheduler.transfers_files():
            raise InputError(
                f"site {site.name} has no shared filesystem (storage.shared_filesystem: false), which the Parsl engine cannot use "
                "with HTCondor: Parsl's CondorProvider submits pilot jobs (blocks) that run many tasks, while HTCondor's file "
                "transfer moves files per job, so task inputs and outputs would never reach the work directory. "
                "Use --engine snakemake (its htcondor plugin transfers each rule's files), or a site with a shared filesystem")
        request, walltime = tasks[0].resources, max(t.resources.walltime_s for t in tasks)
        call = container_call(site, tasks[0].container) if scheduler.runs_containers() else None
        commands = scheduler.commands(request, tasks[0].partition, run_id=ctx.run_id, image=call.image if call else None)
        return CondorProvider(
            nodes_per_block=1,
            init_blocks=site.parsl.init_blocks,
            min_blocks=0,
            max_blocks=min(site.parsl.max_blocks, site.polling.max_queued_jobs),
            requirements=commands.pop("requirements", ""),
            scheduler_options="\n".join(f"{key} = {value}" for key, value in commands.items()),
            worker_init=self._worker_init(ctx),
            walltime=format_walltime(walltime),
        )

    def kubernetes_provider(self, ctx: RunContext, tasks: list[Task], label: str, offline: bool = False, api: Any = None) -> Any:
        """A KubernetesProvider whose pods are exactly this resource class's size, in its image.

        Parsl has no parameter for node selectors, tolerations, pull policy, several pull secrets,
        labels or a deadline: its API client is wrapped so every pod it creates is completed from the
        profile and checked (schedulers.kubernetes) before the one call that reaches the cluster.
        `offline` (rendering): no cluster configuration is read; `api` stands in for CoreV1Api.
        """
        from parsl.providers import KubernetesProvider

        from portaflow.schedulers.kubernetes import image_reference, load_config

        site, k8s = ctx.site, ctx.site.kubernetes
        scheduler = ctx.scheduler
        request = tasks[0].resources
        walltime = max(t.resources.walltime_s for t in tasks)
        scheduler.check_workdir(str(ctx.workdir))  # workers read and write the work directory
        quantities = scheduler.quantities(request)
        gpu = {k8s.gpu_resource: quantities[k8s.gpu_resource]} if request.gpus else {}
        if not offline:
            load_config()  # a clear error instead of Parsl's when no cluster is configured
        with _offline_kube_config(offline):
            provider = KubernetesProvider(
                image=image_reference(site, tasks[0].container or k8s.default_container),
                namespace=k8s.namespace,
                nodes_per_block=1,
                init_blocks=site.parsl.init_blocks,
                min_blocks=0,
                max_blocks=min(site.parsl.max_blocks, site.polling.max_queued_jobs),
                max_cpu=float(request.cores), init_cpu=float(request.cores),
                max_mem=quantities["memory"], init_mem=quantities["memory"],
                extra_requests=gpu, extra_limits=dict(gpu),
                # the image holds the environment: no driver paths, only the site's own lines
                worker_init="\n".join([f"module load {m}" for m in site.environment.modules] + list(site.environment.worker_init)),
                secret=k8s.image_pull_secrets[0] if k8s.image_pull_secrets else None,
                persistent_volumes=[(v.claim, v.mount_path) for v in k8s.volume_claims],
                service_account_name=k8s.service_account,
            )
        provider.kube_client = _CompletingCoreApi(api or provider.kube_client, scheduler, request, tasks[0].partition, ctx.run_id, walltime)
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
        for label, tasks in classes(ctx).items():
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
        if ctx.site.scheduler == "kubernetes":
            written += self._render_kubernetes_pods(ctx, out_dir / "pods")
        if ctx.site.scheduler == "htcondor":
            written += self._render_condor_blocks(ctx, out_dir / "jobs")
        return written

    def _render_kubernetes_pods(self, ctx: RunContext, pods_dir: Path) -> list[Path]:
        """Each block's pod, as KubernetesProvider.submit() hands it to the API (recorded, completed, checked)."""
        from portaflow.schedulers.kubernetes import write_manifests

        pods_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for label, tasks in classes(ctx).items():
            recorder = _RecordingCoreApi()
            provider = self.kubernetes_provider(ctx, tasks, label, offline=True, api=recorder)
            placeholder = f"process_worker_pool.py --label {label} ...  # Parsl adds the interchange address and ports when it starts"
            job_id = provider.submit(placeholder, tasks_per_node=1, job_name=f"parsl.{label}.block-0")
            # Parsl names pods and containers after a random job id: a fixed one keeps golden files stable.
            bodies = [_json_replace(b, job_id, "00000000") for b in recorder.created]
            path = pods_dir / f"{label}.yaml"
            write_manifests(path, bodies, f"The pod Parsl's KubernetesProvider creates for a block of executor {label} "
                                          f"({len(tasks)} task(s)), completed from site {ctx.site.name}; namespace {ctx.site.kubernetes.namespace}.")
            written.append(path)
        return written

    def _render_condor_blocks(self, ctx: RunContext, jobs_dir: Path) -> list[Path]:
        """Each block's submit description and script, from CondorProvider.submit() with a recording `condor_submit`."""
        jobs_dir.mkdir(parents=True, exist_ok=True)
        written = []
        environment = " ".join(f"{k}={v}" for k, v in ctx.scheduler.client_environment(resolve=False).items()) or "(the local schedd)"
        for label, tasks in classes(ctx).items():
            provider = self.condor_provider(ctx, tasks)
            provider.script_dir = str(jobs_dir)
            submitted: list[str] = []

            def record(cmd: str, timeout: int | None = None, _s: list[str] = submitted) -> tuple[int, str, str]:
                _s.append(cmd)
                return 0, "1 job(s) submitted to cluster 0.", ""

            provider.execute_wait = record  # the one call that would reach HTCondor
            placeholder = f"process_worker_pool.py --label {label} ...  # Parsl adds the interchange address and ports when it starts"
            provider.submit(placeholder, tasks_per_node=1, job_name=f"parsl.{label}")
            made = {p.suffix: p for p in Path(jobs_dir).glob(f"parsl.parsl.{label}.*")}
            finals = {made[".submit"]: jobs_dir / f"{label}.sub", made[".script"]: jobs_dir / f"{label}.sh"}
            for made_path, final in finals.items():
                text = made_path.read_text()
                if made_path.suffix == ".submit":
                    text += f"\n# submitted with: {submitted[0]}\n# condor_submit environment: {environment}\n"
                for old, new in finals.items():  # the files keep the names they are rendered under
                    text = text.replace(str(old), str(new)).replace(old.name, new.name)
                # The job name carries Parsl's submit timestamp: replaced so golden files stay stable.
                final.write_text(re.sub(r"(parsl\.[A-Za-z0-9_]+)\.\d+\.\d+", r"\1.<time>", text))
                made_path.unlink()
                written.append(final)
        return written

    def _render_slurm_blocks(self, ctx: RunContext, jobs_dir: Path) -> list[Path]:
        jobs_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for label, tasks in classes(ctx).items():
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
        if ctx.site.scheduler == "htcondor":  # which schedd condor_submit, condor_q and condor_rm talk to, and how
            os.environ.update(ctx.scheduler.client_environment())
        groups = classes(ctx)
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
                    portaflow_block_file=str(_block_file(ctx, task)),
                )
                ctx.on_event("submitted", task, None)
                executor = dfk.executors[label_of[task.id]]
                future.add_done_callback(lambda f, t=task, e=executor: self._finished(ctx, t, f, outcomes, e))
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

    def _finished(self, ctx: RunContext, task: Task, future: Future, outcomes: dict[str, TaskOutcome], executor: Any = None) -> None:
        exc = future.exception()
        job_id = None
        if exc is None:
            outcome = TaskOutcome(task.id, True, 0)
        else:
            remove_outputs(ctx.workdir, task)
            code = getattr(exc, "exitcode", None)
            name = type(exc).__name__
            if name == "DependencyError":
                message = "not run: a task it depends on failed"
            elif name == "BashExitFailure":
                block = _ran_in_block(ctx, task)
                message = failure_message(code, task) + (f" (in Parsl block {block} of executor {executor.label})" if block and executor else "")
                job_id = _block_job(ctx, executor, block)
            else:
                message = f"{name}: {exc}"
            outcome = TaskOutcome(task.id, False, code, job_id=job_id, message=message)
        outcomes[task.id] = outcome
        ctx.on_event("finished", task, outcome)


class _CompletingCoreApi:
    """CoreV1Api as KubernetesProvider uses it, with each pod completed and checked before it is created.

    Everything else (reading pod status, deleting pods) goes to the real client unchanged.
    """

    def __init__(self, api: Any, scheduler: Any, request: TaskResources, partition: str, run_id: str, walltime_s: int):
        self._api, self._scheduler = api, scheduler
        self._args = (request, partition, run_id, walltime_s)

    def create_namespaced_pod(self, namespace: str, body: Any, **kwargs: Any) -> Any:
        from portaflow.schedulers.kubernetes import manifest, raise_if_invalid

        request, partition, run_id, walltime_s = self._args
        self._scheduler.complete(body, request, partition, run_id, walltime_s)
        data = manifest(body)
        raise_if_invalid(data)
        return self._api.create_namespaced_pod(namespace=namespace, body=body, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class _RecordingCoreApi:
    """Stands in for the one API call a block submission makes when rendering: records the pod."""

    def __init__(self) -> None:
        self.created: list[dict] = []

    def create_namespaced_pod(self, namespace: str, body: Any, **kwargs: Any) -> Any:
        from portaflow.schedulers.kubernetes import manifest

        data = manifest(body)
        self.created.append(data)
        return body


def _offline_kube_config(offline: bool) -> Any:
    """While rendering, KubernetesProvider's constructor must not read a cluster configuration."""
    import contextlib
    from unittest import mock

    if not offline:
        return contextlib.nullcontext()
    return mock.patch("kubernetes.config.load_kube_config", lambda *a, **k: None)


def _json_replace(data: Any, old: str, new: str) -> Any:
    import json

    return json.loads(json.dumps(data).replace(old, new))


def _run_line(line: str, inputs: tuple = (), stdout: str | None = None, stderr: str | None = None, portaflow_retries: int = 0,
              portaflow_block_file: str | None = None) -> str:
    """The bash app: its return value is the command Parsl runs.

    It runs on the worker, before the command: it notes the block the worker belongs to (Parsl's worker
    pool sets PARSL_WORKER_BLOCK_ID), because Parsl's result carries no trace of where a task ran, and a
    failure report must name the block's scheduler job. A note that cannot be written only costs that.
    """
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


def _block_job(ctx: RunContext, executor: Any, block: str | None) -> str | None:
    """The scheduler's job id of a block (Parsl's blocks_to_job_id); none on the local site, where it is a process."""
    if block is None or executor is None or ctx.site.scheduler == "local":
        return None
    job = getattr(executor, "blocks_to_job_id", {}).get(block)
    return str(job) if job is not None else None


def _retry_cost(max_retries: int):
    """Per-task retries on top of Parsl's global budget: a task allowed k retries costs max/k a failure."""

    def handler(exception: BaseException, task_record: dict) -> float:
        allowed = task_record["kwargs"].get("portaflow_retries", 0)
        return max_retries / allowed if allowed else max_retries + 1

    return handler


def _describe(r: TaskResources) -> str:
    text = f"cores={r.cores} memory={r.memory_mib}MiB walltime={format_walltime(r.walltime_s)}"
    return text + (f" gpus={r.gpus}" if r.gpus else "") + (f" gpu_model={r.gpu_model}" if r.gpu_model else "")
