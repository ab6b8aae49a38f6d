"""Parsl on Kubernetes: a KubernetesProvider whose pods are one resource class's size, completed from the profile.

Parsl has no parameter for node selectors, tolerations, pull policy, several pull secrets, labels or a
deadline: the provider's API client (its public `kube_client`) is wrapped so every pod it creates is
completed and checked (schedulers.kubernetes) before the one call that reaches the cluster. Render constructs the
provider in a process of its own, with a kubeconfig of its own (schedulers/kubernetes/capture.py).
"""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.plan.model import Task, TaskResources
from portaflow.schedulers.kubernetes.manifests import image_reference, load_config, manifest, raise_if_invalid, write_manifests
from portaflow.schedulers.parsl_blocks import block_sizing, worker_command_placeholder, worker_init

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext


def provider_arguments(ctx: RunContext, tasks: list[Task]) -> dict[str, Any]:
    """KubernetesProvider's arguments for pods of exactly this resource class's size, in its image (JSON values:
    render hands them to its capture process)."""
    site, k8s = ctx.site, ctx.site.kubernetes
    request = tasks[0].resources
    ctx.scheduler.check_workdir(str(ctx.workdir))  # workers read and write the work directory
    quantities = ctx.scheduler.quantities(request, tasks[0].partition)
    resource = ctx.scheduler.gpu_resource(tasks[0].partition)
    gpu = {resource: quantities[resource]} if request.gpus else {}
    return dict(
        image=image_reference(site, tasks[0].container or k8s.default_container),
        namespace=k8s.namespace,
        nodes_per_block=1,
        init_blocks=site.parsl.init_blocks,
        min_blocks=0,
        max_blocks=block_sizing(ctx, tasks).max_blocks,
        max_cpu=float(request.cores), init_cpu=float(request.cores),
        max_mem=quantities["memory"], init_mem=quantities["memory"],
        extra_requests=gpu, extra_limits=dict(gpu),
        # the image holds the environment: no driver paths, only the site's own lines
        worker_init=worker_init(ctx, driver_path=False),
        secret=k8s.image_pull_secrets[0] if k8s.image_pull_secrets else None,
        persistent_volumes=[(v.claim, v.mount_path) for v in k8s.volume_claims],
        service_account_name=k8s.service_account,
    )


def kubernetes_provider(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False, api: Any = None) -> Any:
    """A KubernetesProvider whose pods are exactly this resource class's size, in its image.

    Parsl has no parameter for node selectors, tolerations, pull policy, several pull secrets,
    labels or a deadline: its API client is wrapped so every pod it creates is completed from the
    profile and checked (schedulers.kubernetes) before the one call that reaches the cluster.
    `offline` (rendering): the provider's constructor reads a cluster configuration, so it is constructed in render's
    capture process, with a kubeconfig of render's own (schedulers/kubernetes/capture.py), and handed back; `api`
    then stands in for CoreV1Api.
    """
    arguments = provider_arguments(ctx, tasks)
    if offline:
        provider = pickle.loads(_constructed_offline(ctx, arguments))
    else:
        from parsl.providers import KubernetesProvider

        load_config()  # a clear error instead of Parsl's when no cluster is configured
        provider = KubernetesProvider(**arguments)
    provider.kube_client = CompletingCoreApi(api or provider.kube_client, ctx.scheduler, tasks[0].resources, tasks[0].partition, ctx.run_id,
                                             block_sizing(ctx, tasks).walltime_s)
    return provider


_CONSTRUCTED: dict[str, bytes] = {}
"""Providers constructed by render's capture process (pickled), by their arguments: one process per render."""


def _constructed_offline(ctx: RunContext, arguments: dict[str, Any]) -> bytes:
    """The pickled provider for these arguments, constructed in render's capture process together with those of
    every other resource class of the run (the engine asks for one executor at a time)."""
    from portaflow.schedulers.kubernetes.capture import capture

    key = json.dumps(arguments, sort_keys=True)
    if key not in _CONSTRUCTED:  # a class's arguments are those of any of its tasks: one per task, deduplicated
        wanted = {json.dumps(a, sort_keys=True): a for a in [provider_arguments(ctx, [t]) for t in ctx.tasks] + [arguments]}
        constructed = capture({"parsl": dict(enumerate(wanted.values()))})["parsl"]
        _CONSTRUCTED.update({k: base64.b64decode(constructed[str(i)]) for i, k in enumerate(wanted)})
    return _CONSTRUCTED[key]


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


def _replace_in_json(data: Any, old: str, new: str) -> Any:
    """`data` with every occurrence of `old` in its JSON text replaced (keys and values alike)."""
    return json.loads(json.dumps(data).replace(old, new))
