"""The Dask cluster a `dask` step gets, as its site profile asks (the plan encodes it in env vars).

The engine sets PORTAFLOW_DASK (a JSON DaskPlan) in the step's environment; this module reads it,
so a core's callable only ever sees a `distributed.Client`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "PORTAFLOW_DASK"
GPU_RESOURCE_ENV = "PORTAFLOW_DASK_GPU_RESOURCE"


def dask_settings() -> dict[str, Any]:
    """The DaskPlan for this step, or a one-worker local default when run by hand."""
    text = os.environ.get(ENV_VAR)
    if not text:
        return {"mode": "local", "cpu_workers": 1, "gpu_workers": 0, "threads": 1, "worker_memory_mib": 2048, "gpu_resource": "GPU"}
    return json.loads(text)


@contextlib.contextmanager
def dask_client() -> Iterator[Any]:
    """A client on a cluster made for this step; workers are gone when the block ends."""
    from distributed import Client

    settings = dask_settings()
    log.info("dask cluster: %s mode, %s CPU worker(s), %s GPU worker(s), %s thread(s) and %s MiB each%s", settings["mode"],
             settings["cpu_workers"], settings["gpu_workers"], settings["threads"], settings["worker_memory_mib"],
             "" if os.environ.get(ENV_VAR) else f" (no {ENV_VAR}: the default for a step run by hand)")
    os.environ[GPU_RESOURCE_ENV] = settings["gpu_resource"]
    if settings["mode"] == "jobs" or settings.get("cluster"):  # the site's adapter named how workers start (other jobs, other nodes)
        from portaflow.runtime.dask_jobs import job_cluster

        cluster_cm = job_cluster(settings)
    else:
        cluster_cm = _local_cluster(settings)
    with cluster_cm as cluster, Client(cluster) as client:
        record_workers(client, settings)
        yield client


def where_am_i() -> dict[str, str | None]:
    """This process's host name and, in a SLURM job, its node's name (runs on each worker)."""
    return {"host": socket.gethostname(), "node": os.environ.get("SLURMD_NODENAME")}


def record_workers(client: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """Log, and write to `settings["record"]` (the run directory, for the manifest), where the scheduler listens,
    how its address was chosen, and the host and node each worker runs on. Why: a cluster whose workers all
    sit beside the scheduler looks the same as one spread over nodes until something records where they are."""
    workers = client.run(where_am_i)
    record = {"mode": settings["mode"], "scheduler": client.scheduler.address, "scheduler_host": where_am_i(),
              "scheduler_address": settings.get("scheduler_address"), "workers": workers}
    log.info("dask scheduler at %s on %s; workers: %s", record["scheduler"], record["scheduler_host"]["host"],
             ", ".join(f"{addr} on {w['host']}" + (f" (node {w['node']})" if w["node"] else "") for addr, w in sorted(workers.items())))
    if settings.get("record"):
        path = Path(settings["record"])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        except OSError as exc:  # a job that does not see the run directory: the step's log still has it
            log.warning("could not record the Dask workers' hosts in %s: %s", path, exc)
    return record


@contextlib.contextmanager
def _local_cluster(settings: dict[str, Any]) -> Iterator[Any]:
    """Workers as local processes, inside the step's own job (or on the local machine).

    GPU workers advertise the site's GPU resource and see one GPU each (CUDA_VISIBLE_DEVICES);
    CPU workers advertise nothing, so GPU tasks can only land on GPU workers.
    """
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    threads = int(settings["threads"])
    memory = f"{int(settings['worker_memory_mib'])}MiB"
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    if not settings["gpu_workers"]:
        with LocalCluster(
            n_workers=int(settings["cpu_workers"]), threads_per_worker=threads, memory_limit=memory,
            processes=True, dashboard_address=None, host="127.0.0.1",
        ) as cluster:
            yield cluster
        return
    workers: dict[str, Any] = {}
    for i in range(int(settings["cpu_workers"])):
        workers[f"cpu-{i}"] = {"cls": Nanny, "options": {"nthreads": threads, "memory_limit": memory}}
    for i in range(int(settings["gpu_workers"])):
        env = {"CUDA_VISIBLE_DEVICES": visible[i % len(visible)]} if visible else {}
        workers[f"gpu-{i}"] = {"cls": Nanny, "options": {
            "nthreads": threads, "memory_limit": memory, "resources": {settings["gpu_resource"]: 1}, "env": env,
        }}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}
    with SpecCluster(workers=workers, scheduler=scheduler) as cluster:
        yield cluster
