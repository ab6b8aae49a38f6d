"""Dask workers as pods of their own on Kubernetes sites (`dask.mode: jobs`), started from inside the step's pod.

As on SLURM (`dask_jobs.py`), one Dask scheduler runs in the step's own pod and each worker is a pod of its
own, joined to it. The engine side has already built each worker kind's complete Pod from the site profile
(`schedulers/kubernetes/dask.py`: resources as requests = limits, node pool selector and tolerations, image,
pull secrets, run labels, `restartPolicy: Never`, a deadline); they arrive in PORTAFLOW_DASK as manifests,
so this module needs no profile: it names the pods, fills in the scheduler's address, creates them with the
kubernetes client, and deletes them by label when the block ends.

Where the site runs the Dask Kubernetes operator (`kubernetes.dask_operator: true`), the cluster is the
DaskCluster resource the engine side built, started with dask-kubernetes' KubeCluster (the operator then runs
the scheduler and the workers); deleting the resource removes them.

This only runs where an API server answers (the step's pod, with a service account allowed to create, get,
list and delete pods, or DaskClusters); nothing here is exercised without one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from typing import Any

SCHEDULER_ENV = "PORTAFLOW_DASK_SCHEDULER"
"""Worker containers' environment variable holding the scheduler's address (their args refer to it)."""
WORKER_LABEL = "portaflow/dask-worker"
"""`cpu` or `gpu` on every worker pod."""
CLUSTER_LABEL = "portaflow/dask-cluster"
"""One cluster (one attempt of a step): what the worker pods of this block are found and deleted by."""
DEFAULT_PORT = 8786


def worker_pods(settings: dict[str, Any], address: str, cluster: str) -> list[dict[str, Any]]:
    """The worker Pods to create: each kind's template once per worker, named and labelled for `cluster`,
    pointed at the scheduler `address`. `render` calls this too, so the files show what a run creates."""
    pods = []
    for kind in ("cpu", "gpu"):
        template = (settings.get("worker_pods") or {}).get(kind)
        for index in range(int(settings[f"{kind}_workers"])):
            pod = copy.deepcopy(template)
            name = f"{template['metadata']['name']}-{cluster}-{index}"
            pod["metadata"]["name"] = name
            pod["metadata"]["labels"][CLUSTER_LABEL] = cluster
            container = pod["spec"]["containers"][0]
            for item in container.get("env") or []:
                if item["name"] == SCHEDULER_ENV:
                    item["value"] = address
            container["args"] = list(container.get("args") or []) + ["--name", name]
            pods.append(pod)
    return pods


def scheduler_host(settings: dict[str, Any]) -> str:
    """The address worker pods reach the step's pod at: the profile's `network.interface` when it names one,
    else the pod's own IP (a pod's hostname resolves to it). `network.address` names the driver, not the step."""
    if settings.get("interface"):
        from distributed.utils import get_ip_interface

        return get_ip_interface(settings["interface"])
    return socket.gethostbyname(socket.gethostname())


@contextlib.contextmanager
def kubernetes_cluster(settings: dict[str, Any]) -> Iterator[Any]:
    """The step's Dask cluster on a Kubernetes site: DaskCluster through the operator, or worker pods."""
    cm = operator_cluster(settings) if settings.get("operator") else pod_cluster(settings)
    with cm as cluster:
        yield cluster


@contextlib.contextmanager
def pod_cluster(settings: dict[str, Any]) -> Iterator[Any]:
    """A scheduler in this pod, each worker a pod; every worker pod of this cluster is deleted when the block ends."""
    from distributed import Scheduler, SpecCluster
    from kubernetes import client, config

    config.load_incluster_config()
    core = client.CoreV1Api()
    namespace = settings["namespace"]
    port = int(settings.get("port") or DEFAULT_PORT)
    cluster_id = secrets.token_hex(3)
    selector = ",".join(f"{k}={v}" for k, v in {**settings["selector"], CLUSTER_LABEL: cluster_id}.items())
    scheduler = {"cls": Scheduler, "options": {"host": "0.0.0.0", "port": port, "dashboard": False}}
    pods = worker_pods(settings, f"tcp://{scheduler_host(settings)}:{port}", cluster_id)
    owner = _own_pod_reference(core, namespace)
    try:
        with SpecCluster(workers={}, scheduler=scheduler, name="portaflow-dask") as cluster:
            for pod in pods:
                if owner:  # the API server deletes the workers if the step's pod goes first
                    pod["metadata"]["ownerReferences"] = [owner]
                core.create_namespaced_pod(namespace, pod)
            cluster.wait_for_workers(len(pods), timeout=int(settings.get("start_timeout_s", 600)))
            yield cluster
    finally:
        delete_workers(core, namespace, selector)


def delete_workers(core: Any, namespace: str, selector: str) -> list[str]:
    """Delete the pods carrying `selector` (the run, the step, this cluster); return their names."""
    from kubernetes.client.rest import ApiException

    names = []
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        try:
            core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=10)
            names.append(pod.metadata.name)
        except ApiException as exc:
            if exc.status != 404:  # already gone is success
                raise
    return names


def _own_pod_reference(core: Any, namespace: str) -> dict[str, Any] | None:
    """An ownerReference to the step's own pod (its name is the hostname), or None where it cannot be read."""
    from kubernetes.client.rest import ApiException

    name = os.environ.get("HOSTNAME") or socket.gethostname()
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        print(f"portaflow: worker pods get no owner (reading pod {name}: {exc.status} {exc.reason}); "
              "they are deleted at the end of the step or when their deadline passes", file=sys.stderr)
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod.metadata.uid}


@contextlib.contextmanager
def operator_cluster(settings: dict[str, Any]) -> Iterator[Any]:
    """The DaskCluster (and a DaskWorkerGroup for a second worker kind) through dask-kubernetes' KubeCluster."""
    from dask_kubernetes.operator import KubeCluster

    resources = copy.deepcopy(settings["cluster_resources"])
    body, groups = resources[0], resources[1:]
    suffix = secrets.token_hex(3)
    body["metadata"]["name"] = name = f"{body['metadata']['name']}-{suffix}"
    selector = body["spec"]["scheduler"]["service"].get("selector") or {}
    if "dask.org/cluster-name" in selector:  # the scheduler's service finds its pod by the cluster's name
        selector["dask.org/cluster-name"] = name
    with KubeCluster(custom_cluster_spec=body, namespace=settings["namespace"], shutdown_on_close=True) as cluster:
        for group in groups:
            cluster.add_worker_group(group["metadata"]["name"].rsplit("-", 1)[-1], custom_spec=group["spec"]["worker"])
        workers = int(settings["cpu_workers"]) + int(settings["gpu_workers"])
        cluster.wait_for_workers(workers, timeout=int(settings.get("start_timeout_s", 600)))
        yield cluster
