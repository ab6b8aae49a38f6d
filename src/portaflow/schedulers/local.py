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
        workers = max(1, min(part.cores_per_node // request.cores, part.memory_per_node // max(request.memory_mib, 1),
                             self.site.polling.max_queued_jobs))
        return {"max_workers_per_node": workers, "cores_per_worker": request.cores,
                "available_accelerators": [str(i) for i in range(request.gpus)]}

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        """Snakemake's local executor: this machine's size, and how many tasks at once (each rule takes one `portaflow_tasks`)."""
        part = self.site.partitions[self.site.default_partition]
        return {"cores": part.cores_per_node,
                "resources": [f"mem_mb={part.memory_per_node}", f"portaflow_tasks={self.site.polling.max_queued_jobs}"]}

    def snakemake_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        return {**super().snakemake_resources(ctx, task), "portaflow_tasks": 1}

    def shortcut_overrides(self, cores: int | None, jobs: int | None) -> dict[str, str]:
        """--cores N: every partition of this machine has N cores; --jobs N: at most N tasks at once (the local site's
        `polling.max_queued_jobs`, which Snakemake's local executor and Parsl's workers obey)."""
        out = {f"partitions.{name}.cores_per_node": str(cores) for name in self.site.partitions} if cores is not None else {}
        if jobs is not None:
            out["polling.max_queued_jobs"] = str(jobs)
        return out
