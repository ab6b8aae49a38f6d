"""Dask workers as separate batch jobs (the site's `dask.mode: jobs`), through dask-jobqueue.

One Dask scheduler runs in the step's own job; CPU workers and GPU workers are jobs of their own
(dask-jobqueue's `SLURMJob`, as its clusters use them), all joined to that scheduler. The engine
has already turned each worker kind's request into the scheduler's options (the same `schedulers`
module that sizes every other job), so they are passed verbatim and dask-jobqueue's own resource
directives are skipped: one source of truth for what a job asks for.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from typing import Any

from portaflow.addresses import AddressChoice, choose_address, is_loopback

SLURM_SKIP = ["-n 1", "--cpus-per-task", "--mem", "-t", "-p", "-A", "-q"]
"""dask-jobqueue's own SLURM directives, replaced by portaflow's."""


def scheduler_address(settings: dict[str, Any]) -> AddressChoice:
    """Where the worker jobs reach the scheduler in this job: `addresses.choose_address` (the rule Parsl's
    interchange follows too) with the profile's `network.interface` and the adapter's peers, whose environment
    variables are expanded here, in the job (SLURM: `$SLURM_SUBMIT_HOST`, the host the step was submitted from)."""
    peers = [os.path.expandvars(p) for p in settings.get("peers") or []]
    return choose_address(interface=settings.get("interface"), peers=[p for p in peers if "$" not in p],
                          what="Dask workers")


def worker_specs(settings: dict[str, Any], host: str) -> dict[str, dict[str, Any]]:
    """SpecCluster worker specs: one SLURM job per worker, GPU workers tagged with the GPU resource. `host`: the
    scheduler's address; on loopback the workers listen there too (their own guess would not be loopback)."""
    from dask_jobqueue.slurm import SLURMJob

    specs: dict[str, dict[str, Any]] = {}
    for kind in ("cpu", "gpu"):
        for i in range(int(settings[f"{kind}_workers"])):
            extra = ["--host", host] if is_loopback(host) else []
            if kind == "gpu":
                extra += ["--resources", f"{settings['gpu_resource']}=1"]
            specs[f"{kind}-{i}"] = {"cls": SLURMJob, "options": {
                "cores": int(settings["threads"]), "processes": 1,
                "memory": f"{settings[f'{kind}_worker']['memory_mib']}MiB",
                "job_name": f"portaflow-dask-{kind}", "job_directives_skip": SLURM_SKIP,
                "job_extra_directives": list(settings[f"{kind}_worker_directives"]),
                "worker_extra_args": extra,
            }}
    return specs


@contextlib.contextmanager
def job_cluster(settings: dict[str, Any]) -> Iterator[Any]:
    """The cluster the site's adapter chose for worker jobs: `settings["cluster"]` names its factory as
    'module:function' (schedulers' dask_worker_settings), so this module compares no scheduler names."""
    module, _, function = str(settings.get("cluster", "")).partition(":")
    if not module or not function:
        raise NotImplementedError(f"Dask worker jobs: the site's scheduler ({settings.get('scheduler')!r}) names no cluster for them")
    factory = getattr(importlib.import_module(module), function)
    with factory(settings) as cluster:
        yield cluster


@contextlib.contextmanager
def slurm_cluster(settings: dict[str, Any]) -> Iterator[Any]:
    """A scheduler here, workers as SLURM jobs; every worker job is cancelled when the block ends. How the
    scheduler's address was chosen goes into `settings["scheduler_address"]` (dask_cluster records it)."""
    from distributed import Scheduler, SpecCluster

    choice = scheduler_address(settings)
    settings["scheduler_address"] = choice.as_record()
    host = choice.address
    specs = worker_specs(settings, host)
    scheduler = {"cls": Scheduler, "options": {"host": host, "dashboard": False}}
    with SpecCluster(workers=specs, scheduler=scheduler, name="portaflow-dask") as cluster:
        cluster.wait_for_workers(len(specs), timeout=int(settings.get("start_timeout_s", 600)))
        yield cluster
