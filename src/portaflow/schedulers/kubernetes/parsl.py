"""Parsl on Kubernetes: a KubernetesProvider whose pods are one resource class's size, completed from the profile.

Parsl has no parameter for node selectors, tolerations, pull policy, several pull secrets, labels or a
deadline: the provider's API client (its public `kube_client`) is wrapped so every pod it creates is
completed and checked (schedulers.kubernetes) before the one call that reaches the cluster.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.plan.model import Task, TaskResources
from portaflow.schedulers.base import max_jobs_at_once
from portaflow.schedulers.kubernetes.manifests import image_reference, load_config, manifest, raise_if_invalid, write_manifests
from portaflow.schedulers.parsl_blocks import longest_walltime, worker_command_placeholder, worker_init

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext


def kubernetes_provider(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False, api: Any = None) -> Any:
    """A KubernetesProvider whose pods are exactly this resource class's size, in its image.

    Parsl has no parameter for node selectors, tolerations, pull policy, several pull secrets,
    labels or a deadline: its API client is wrapped so every pod it creates is completed from the
    profile and checked (schedulers.kubernetes) before the one call that reaches the cluster.
    `offline` (rendering): no cluster configuration is read; `api` stands in for CoreV1Api.
    """
    from parsl.providers import KubernetesProvider

    site, k8s = ctx.site, ctx.site.kubernetes
    scheduler = ctx.scheduler
    request = tasks[0].resources
    walltime = longest_walltime(tasks)
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
            max_blocks=max_jobs_at_once(site, site.parsl.max_blocks),
            max_cpu=float(request.cores), init_cpu=float(request.cores),
            max_mem=quantities["memory"], init_mem=quantities["memory"],
            extra_requests=gpu, extra_limits=dict(gpu),
            # the image holds the environment: no driver paths, only the site's own lines
            worker_init=worker_init(ctx, driver_path=False),
            secret=k8s.image_pull_secrets[0] if k8s.image_pull_secrets else None,
            persistent_volumes=[(v.claim, v.mount_path) for v in k8s.volume_claims],
            service_account_name=k8s.service_account,
        )
    provider.kube_client = CompletingCoreApi(api or provider.kube_client, scheduler, request, tasks[0].partition, ctx.run_id, walltime)
    return provider


def render_kubernetes_pods(ctx: RunContext, groups: dict[str, list[Task]], pods_dir: Path) -> list[Path]:
    """Each block's pod, as KubernetesProvider.submit() hands it to the API (recorded, completed, checked)."""
    pods_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for label, tasks in groups.items():
        recorder = RecordingCoreApi()
        provider = kubernetes_provider(ctx, label, tasks, offline=True, api=recorder)
        job_id = provider.submit(worker_command_placeholder(label), tasks_per_node=1, job_name=f"parsl.{label}.block-0")
        # Parsl names pods and containers after a random job id: a fixed one keeps golden files stable.
        bodies = [_replace_in_json(b, job_id, "00000000") for b in recorder.created]
        path = pods_dir / f"{label}.yaml"
        write_manifests(path, bodies, f"The pod Parsl's KubernetesProvider creates for a block of executor {label} "
                                      f"({len(tasks)} task(s)), completed from site {ctx.site.name}; namespace {ctx.site.kubernetes.namespace}.")
        written.append(path)
    return written


# -- Kubernetes: the provider's API client -----------------------------------------------------
class CompletingCoreApi:
    """CoreV1Api as KubernetesProvider uses it, with each pod completed and checked before it is created.

    Everything else (reading pod status, deleting pods) goes to the real client unchanged.
    """

    def __init__(self, api: Any, scheduler: Any, request: TaskResources, partition: str, run_id: str, walltime_s: int):
        self._api, self._scheduler = api, scheduler
        self._args = (request, partition, run_id, walltime_s)

    def create_namespaced_pod(self, namespace: str, body: Any, **kwargs: Any) -> Any:
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
        data = manifest(body)
        self.created.append(data)
        return body


@contextlib.contextmanager
def _kube_config_unread_if(offline: bool) -> Iterator[None]:
    """While rendering, KubernetesProvider's constructor must not read a cluster configuration.

    The one place where upstream has no hook: Parsl's constructor always calls `kubernetes.config.load_kube_config()`,
    whose file location the client fixes when it is imported. So, for the constructor's duration only, that function is
    a no-op. Written against parsl 2026.10.26 and kubernetes 32.x (pyproject.toml bounds both).
    """
    if not offline:
        yield
        return
    from kubernetes import config

    original = config.load_kube_config
    config.load_kube_config = lambda *args, **kwargs: None
    try:
        yield
    finally:
        config.load_kube_config = original


def _replace_in_json(data: Any, old: str, new: str) -> Any:
    """`data` with every occurrence of `old` in its JSON text replaced (keys and values alike)."""
    return json.loads(json.dumps(data).replace(old, new))
