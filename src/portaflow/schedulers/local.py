"""The local 'scheduler': steps run as processes on this machine; a Parsl block is one process, not a job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portaflow.plan.model import Task
from portaflow.schedulers.base import Scheduler
from portaflow.schedulers.parsl_blocks import worker_init

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext


class LocalScheduler(Scheduler):
    name = "local"
    blocks_are_jobs = False

    def parsl_provider(self, ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> Any:
        """One block on this machine; its workers share the partition's cores (the executor sets how many)."""
        from parsl.providers import LocalProvider

        return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=worker_init(ctx))

    def parsl_executor_options(self, ctx: RunContext, tasks: list[Task]) -> dict[str, Any]:
        """One block, this machine: as many workers as the partition's node holds, each with the task's cores and GPUs."""
        request = tasks[0].resources
        part = self.site.partitions[tasks[0].partition]
        workers = max(1, min(part.cores_per_node // request.cores, part.memory_per_node // max(request.memory_mib, 1)))
        return {"max_workers_per_node": workers, "cores_per_worker": request.cores,
                "available_accelerators": [str(i) for i in range(request.gpus)]}

    def worker_hosts(self, ctx: RunContext, tasks: list[Task]) -> list[str]:
        """Workers are processes on this machine: loopback is right here."""
        return ["127.0.0.1"]

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        """Snakemake's local executor: this machine's size."""
        part = self.site.partitions[self.site.default_partition]
        return {"cores": part.cores_per_node, "resources": [f"mem_mb={part.memory_per_node}"]}
