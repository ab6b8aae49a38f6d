"""Dask workers on every node of a SLURM step's own allocation (`dask.mode: in_allocation` with `nodes > 1`).

The scheduler runs in the step's process, on the allocation's first node, listening on that node's address toward
the others (`addresses.choose_address`, as everywhere); each worker is a `dask worker` process started with
`srun --overlap` on one node of the allocation, the nodes taken in turn, so a step's workers cover all its nodes.
Why srun: it is how a SLURM job starts a process on another of its nodes (no ssh), inside the job's limits, and
the job's end stops them. `--overlap`: the step (a Parsl worker, or Snakemake's `srun -n1` job step) already holds
the job's CPUs; the workers share them, as they would share the node's CPUs with it on one node.

The workers are `distributed.deploy.spec.ProcessInterface`s, the extension point dask-jobqueue's jobs use too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from portaflow.addresses import choose_address
from portaflow.commands import run_command

log = logging.getLogger(__name__)


def allocation_nodes() -> list[str]:
    """The nodes of this job's allocation, this one first. Asked of SLURM by the job's id (`squeue`), not read from
    `SLURM_JOB_NODELIST`: inside a job step (Snakemake's `srun -n1`) the environment describes the step's one node."""
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("SLURM_JOBID")
    if not job:
        raise RuntimeError("dask in_allocation on several nodes: SLURM_JOB_ID is not set (not inside a SLURM job?)")
    nodelist = run_command(["squeue", "--noheader", f"--jobs={job}", "--format=%N"], timeout=30).stdout.strip()
    nodes = run_command(["scontrol", "show", "hostnames", nodelist], timeout=30).stdout.split()
    here = os.environ.get("SLURMD_NODENAME")
    return sorted(nodes, key=lambda node: node != here)


def srun_worker_class() -> type:
    """The ProcessInterface of one worker: a `dask worker` started on one node by srun (built on first use, so that
    importing this module does not import distributed)."""
    from distributed.deploy.spec import ProcessInterface

    class SrunWorker(ProcessInterface):
        """`srun --overlap` of one `dask worker` on `node`; closing it stops the srun (and so the worker)."""

        def __init__(self, scheduler: str, name: str, node: str, threads: int, memory: str, extra: list[str]):
            super().__init__(scheduler=scheduler, name=name)
            self.scheduler, self.name, self.node = scheduler, name, node
            self.argv = ["srun", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node}", f"--cpus-per-task={threads}",
                         "--mem=0", f"--job-name=dask-{name}", "--kill-on-bad-exit=1",
                         sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--name", str(name),
                         "--nthreads", str(threads), "--memory-limit", memory, "--nworkers", "1", "--no-dashboard", *extra]
            self.proc: asyncio.subprocess.Process | None = None

        async def start(self) -> None:
            log.info("starting Dask worker %s on %s: %s", self.name, self.node, " ".join(self.argv))
            self.proc = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.DEVNULL)
            await super().start()

        async def close(self) -> None:
            if self.proc is not None and self.proc.returncode is None:
                self.proc.terminate()  # srun passes it on to the worker
                try:
                    await asyncio.wait_for(self.proc.wait(), timeout=15)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()
            await super().close()

    return SrunWorker


def worker_specs(settings: dict[str, Any], nodes: list[str]) -> dict[str, dict[str, Any]]:
    """One spec per worker, nodes in turn (CPU workers first, then GPU workers tagged with the GPU resource)."""
    cls = srun_worker_class()
    specs: dict[str, dict[str, Any]] = {}
    index = 0
    for kind in ("cpu", "gpu"):
        for i in range(int(settings[f"{kind}_workers"])):
            extra = ["--resources", f"{settings['gpu_resource']}=1"] if kind == "gpu" else []
            specs[f"{kind}-{i}"] = {"cls": cls, "options": {
                "node": nodes[index % len(nodes)], "threads": int(settings["threads"]),
                "memory": f"{int(settings['worker_memory_mib'])}MiB", "extra": extra}}
            index += 1
    return specs


@contextlib.contextmanager
def srun_cluster(settings: dict[str, Any]) -> Iterator[Any]:
    """A scheduler here, a worker per node of the allocation in turn; every worker stopped when the block ends."""
    from distributed import Scheduler, SpecCluster

    nodes = allocation_nodes()
    choice = choose_address(interface=settings.get("interface"), peers=nodes[1:], what="Dask workers")
    settings["scheduler_address"] = choice.as_record()
    specs = worker_specs(settings, nodes)
    scheduler = {"cls": Scheduler, "options": {"host": choice.address, "dashboard": False}}
    with SpecCluster(workers=specs, scheduler=scheduler, name="portaflow-dask-srun") as cluster:
        cluster.wait_for_workers(len(specs), timeout=int(settings.get("start_timeout_s", 600)))
        yield cluster
