"""Parsl, per scheduler: the provider that asks for an executor's blocks, and what `render` captures of it.

One function per scheduler builds the Parsl provider for one resource class (one executor):
LocalProvider on the local site, SlurmProvider with the sbatch options from `schedulers.slurm`,
CondorProvider with the submit commands from `schedulers.htcondor`, KubernetesProvider with pods
completed from the profile by `schedulers.kubernetes`. `provider_for` picks one by scheduler name.

Rendering runs each provider's own submit() and records the one call that would reach the
scheduler (`execute_wait` running sbatch or condor_submit; `create_namespaced_pod` on Kubernetes),
so the rendered files are exactly what Parsl would hand over. `render_blocks` picks by scheduler name.
Parsl itself is imported inside the functions: importing portaflow must not import Parsl.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from portaflow.containers import container_call
from portaflow.engines.base import RunContext
from portaflow.errors import InputError
from portaflow.plan.model import Task, TaskResources
from portaflow.units import format_walltime

if TYPE_CHECKING:
    from parsl.providers import CondorProvider, KubernetesProvider, LocalProvider, SlurmProvider
    from parsl.providers.base import ExecutionProvider
    from parsl.providers.cluster_provider import ClusterProvider

_STRIP_FOR_PARSL = ("--time", "--nodes", "--ntasks", "--job-name", "--output", "--error")
"""sbatch options Parsl's own template writes: passing them again would give two conflicting values."""

_PARSL_TIMESTAMP = re.compile(r"(parsl\.[A-Za-z0-9_]+)\.\d+\.\d+")
"""Parsl names a block's job after its submit time (parsl.<label>.<seconds>.<fraction>)."""

ProviderFactory = Callable[[RunContext, str, list[Task], bool], "ExecutionProvider"]
"""(run context, executor label, the executor's tasks, offline) -> the executor's provider."""


# -- providers ---------------------------------------------------------------------------------
def provider_for(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> ExecutionProvider:
    """The provider for one executor (resource class) on the site's scheduler.

    `offline` (rendering): nothing may contact a cluster or read its configuration.
    """
    make = _PROVIDERS.get(ctx.site.scheduler)
    if make is None:
        raise NotImplementedError(f"Parsl engine: scheduler {ctx.site.scheduler} is not supported yet")
    return make(ctx, label, tasks, offline)


def worker_init(ctx: RunContext) -> str:
    """Workers need the driver's Python environment first on PATH (Parsl finds its scripts there)."""
    site = ctx.site
    lines = [f"module load {m}" for m in site.environment.modules]
    lines += list(site.environment.worker_init)
    if not site.environment.worker_init:  # no environment of the site's own: reuse the driver's
        lines.append(f"export PATH={Path(sys.executable).parent}:$PATH")
    return "\n".join(lines)


def local_provider(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> LocalProvider:
    """One block on this machine; its workers share the partition's cores (the executor sets how many)."""
    from parsl.providers import LocalProvider

    return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=worker_init(ctx))


def slurm_provider(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> SlurmProvider:
    """A SlurmProvider whose blocks are jobs of exactly this resource class's size."""
    from parsl.launchers import SingleNodeLauncher, SrunLauncher
    from parsl.providers import SlurmProvider

    site = ctx.site
    request, partition, walltime_s = tasks[0].resources, tasks[0].partition, _longest_walltime(tasks)
    directives = [d for d in ctx.scheduler.directives(request, partition) if d.split("=")[0] not in _STRIP_FOR_PARSL]
    directives.append(f"--comment=portaflow:{ctx.run_id}")
    return SlurmProvider(
        partition=None,
        nodes_per_block=request.nodes,
        init_blocks=site.parsl.init_blocks,
        min_blocks=0,
        max_blocks=min(site.parsl.max_blocks, site.polling.max_queued_jobs),
        walltime=format_walltime(-(-walltime_s // 60) * 60),  # Parsl writes whole minutes; never 0
        scheduler_options="\n".join(f"#SBATCH {d}" for d in directives),
        worker_init=worker_init(ctx),
        exclusive=False,
        launcher=SrunLauncher() if site.slurm.launcher == "srun" else SingleNodeLauncher(),
    )


def condor_provider(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> CondorProvider:
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
    request, walltime = tasks[0].resources, _longest_walltime(tasks)
    call = container_call(site, tasks[0].container) if scheduler.runs_containers() else None
    commands = scheduler.commands(request, tasks[0].partition, run_id=ctx.run_id, image=call.image if call else None)
    return CondorProvider(
        nodes_per_block=1,
        init_blocks=site.parsl.init_blocks,
        min_blocks=0,
        max_blocks=min(site.parsl.max_blocks, site.polling.max_queued_jobs),
        requirements=commands.pop("requirements", ""),
        scheduler_options="\n".join(f"{key} = {value}" for key, value in commands.items()),
        worker_init=worker_init(ctx),
        walltime=format_walltime(walltime),
    )


def kubernetes_provider(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False, api: Any = None) -> KubernetesProvider:
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
    walltime = _longest_walltime(tasks)
    scheduler.check_workdir(str(ctx.workdir))  # workers read and write the work directory
    quantities = scheduler.quantities(request)
    gpu = {k8s.gpu_resource: quantities[k8s.gpu_resource]} if request.gpus else {}
    if not offline:
        load_config()  # a clear error instead of Parsl's when no cluster is configured
    with _kube_config_unread_if(offline):
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
    provider.kube_client = CompletingCoreApi(api or provider.kube_client, scheduler, request, tasks[0].partition, ctx.run_id, walltime)
    return provider


_PROVIDERS: dict[str, ProviderFactory] = {
    "local": local_provider,
    "slurm": slurm_provider,
    "htcondor": condor_provider,
    "kubernetes": kubernetes_provider,
}


def _longest_walltime(tasks: list[Task]) -> int:
    """A block must outlive the longest task it may run."""
    return max(t.resources.walltime_s for t in tasks)


# -- what render captures ----------------------------------------------------------------------
def render_blocks(ctx: RunContext, groups: dict[str, list[Task]], out_dir: Path) -> list[Path]:
    """Each executor's block as its provider hands it to the site's scheduler (nothing on the local site,
    where a block is a process): SLURM job scripts and HTCondor submit files under jobs/, Kubernetes pods under pods/."""
    if ctx.site.scheduler == "slurm":
        return render_slurm_blocks(ctx, groups, out_dir / "jobs")
    if ctx.site.scheduler == "kubernetes":
        return render_kubernetes_pods(ctx, groups, out_dir / "pods")
    if ctx.site.scheduler == "htcondor":
        return render_condor_blocks(ctx, groups, out_dir / "jobs")
    return []


def render_slurm_blocks(ctx: RunContext, groups: dict[str, list[Task]], jobs_dir: Path) -> list[Path]:
    """Each block's job script, from SlurmProvider.submit() with a recording `sbatch`."""
    written = []
    for label, submitted in _recorded_submissions(ctx, groups, jobs_dir, slurm_provider, reply="Submitted batch job 0"):
        script = next(p for p in Path(jobs_dir).glob(f"parsl.{label}.*") if p.suffix not in (".stdout", ".stderr"))
        final = jobs_dir / f"{label}.sbatch"
        text = _stable_job_names(script.read_text())
        final.write_text(text + f"\n# submitted with: {submitted}\n".replace(str(script), str(final)))
        script.unlink()
        written.append(final)
    return written


def render_condor_blocks(ctx: RunContext, groups: dict[str, list[Task]], jobs_dir: Path) -> list[Path]:
    """Each block's submit description and script, from CondorProvider.submit() with a recording `condor_submit`."""
    submissions = _recorded_submissions(ctx, groups, jobs_dir, condor_provider, reply="1 job(s) submitted to cluster 0.")
    written = []
    environment = " ".join(f"{k}={v}" for k, v in ctx.scheduler.client_environment(resolve=False).items()) or "(the local schedd)"
    for label, submitted in submissions:
        made = {p.suffix: p for p in Path(jobs_dir).glob(f"parsl.parsl.{label}.*")}
        finals = {made[".submit"]: jobs_dir / f"{label}.sub", made[".script"]: jobs_dir / f"{label}.sh"}
        for made_path, final in finals.items():
            text = made_path.read_text()
            if made_path.suffix == ".submit":
                text += f"\n# submitted with: {submitted}\n# condor_submit environment: {environment}\n"
            for old, new in finals.items():  # the files keep the names they are rendered under
                text = text.replace(str(old), str(new)).replace(old.name, new.name)
            final.write_text(_stable_job_names(text))
            made_path.unlink()
            written.append(final)
    return written


def render_kubernetes_pods(ctx: RunContext, groups: dict[str, list[Task]], pods_dir: Path) -> list[Path]:
    """Each block's pod, as KubernetesProvider.submit() hands it to the API (recorded, completed, checked)."""
    from portaflow.schedulers.kubernetes import write_manifests

    pods_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for label, tasks in groups.items():
        recorder = RecordingCoreApi()
        provider = kubernetes_provider(ctx, label, tasks, offline=True, api=recorder)
        job_id = provider.submit(_worker_command_placeholder(label), tasks_per_node=1, job_name=f"parsl.{label}.block-0")
        # Parsl names pods and containers after a random job id: a fixed one keeps golden files stable.
        bodies = [_replace_in_json(b, job_id, "00000000") for b in recorder.created]
        path = pods_dir / f"{label}.yaml"
        write_manifests(path, bodies, f"The pod Parsl's KubernetesProvider creates for a block of executor {label} "
                                      f"({len(tasks)} task(s)), completed from site {ctx.site.name}; namespace {ctx.site.kubernetes.namespace}.")
        written.append(path)
    return written


def _recorded_submissions(ctx: RunContext, groups: dict[str, list[Task]], jobs_dir: Path, make_provider: ProviderFactory,
                          reply: str) -> Iterator[tuple[str, str]]:
    """(label, command line) of each executor's block, submitted through `_submit_recorded`.

    Creates jobs_dir at once; each block is submitted only as the caller iterates, so the caller can
    collect (and rename) one block's files before the next block's are written.
    """
    jobs_dir.mkdir(parents=True, exist_ok=True)
    return ((label, _submit_recorded(make_provider(ctx, label, tasks, False), label, jobs_dir, reply)) for label, tasks in groups.items())


def _submit_recorded(provider: ClusterProvider, label: str, jobs_dir: Path, reply: str) -> str:
    """Run the provider's own submit() for one block, with a recording stand-in for `execute_wait`.

    `execute_wait` is the one call through which SlurmProvider and CondorProvider reach the scheduler
    (sbatch, condor_submit): everything before it (the job files in jobs_dir) is Parsl's real work,
    and `reply` is what the scheduler's tool would print, so submit() finishes as after a real submission.
    Returns the command line Parsl would have run.
    """
    provider.script_dir = str(jobs_dir)
    submitted: list[str] = []

    def record(cmd: str, timeout: int | None = None) -> tuple[int, str, str]:
        submitted.append(cmd)
        return 0, reply, ""

    provider.execute_wait = record
    provider.submit(_worker_command_placeholder(label), tasks_per_node=1, job_name=f"parsl.{label}")
    return submitted[0]


def _worker_command_placeholder(label: str) -> str:
    """The worker command a rendered block runs: its real arguments exist only once Parsl has started."""
    return f"process_worker_pool.py --label {label} ...  # Parsl adds the interchange address and ports when it starts"


def _stable_job_names(text: str) -> str:
    """The job name carries Parsl's submit timestamp: replaced so golden files stay stable."""
    return _PARSL_TIMESTAMP.sub(r"\1.<time>", text)


# -- Kubernetes: the provider's API client -----------------------------------------------------
class CompletingCoreApi:
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


class RecordingCoreApi:
    """Stands in for the one API call a block submission makes when rendering: records the pod."""

    def __init__(self) -> None:
        self.created: list[dict] = []

    def create_namespaced_pod(self, namespace: str, body: Any, **kwargs: Any) -> Any:
        from portaflow.schedulers.kubernetes import manifest

        data = manifest(body)
        self.created.append(data)
        return body


def _kube_config_unread_if(offline: bool) -> contextlib.AbstractContextManager[Any]:
    """While rendering, KubernetesProvider's constructor must not read a cluster configuration."""
    from unittest import mock

    if not offline:
        return contextlib.nullcontext()
    return mock.patch("kubernetes.config.load_kube_config", lambda *a, **k: None)


def _replace_in_json(data: Any, old: str, new: str) -> Any:
    """`data` with every occurrence of `old` in its JSON text replaced (keys and values alike)."""
    return json.loads(json.dumps(data).replace(old, new))
