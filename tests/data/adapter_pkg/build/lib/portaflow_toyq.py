"""toyq: a scheduler adapter written outside portaflow, using only portaflow's public adapter interface.

Its jobs run on this machine (Parsl's LocalProvider, Snakemake's local executor); what makes it a scheduler of its
own is its request syntax (`#TOYQ` directives) and its name, which a site profile's `scheduler:` uses.
"""

from __future__ import annotations

from typing import Any

from portaflow.schedulers.base import Scheduler
from portaflow.schedulers.parsl_blocks import worker_init


class ToyQScheduler(Scheduler):
    name = "toyq"
    blocks_are_jobs = False
    managed_flags = frozenset({"--toy-cores", "--toy-mem", "--toy-queue"})

    def directives(self, request, partition: str) -> list[str]:
        return [f"--toy-queue={partition}", f"--toy-cores={request.cores}", f"--toy-mem={request.memory_mib}M"]

    def parsl_provider(self, ctx, label: str, tasks: list, offline: bool = False) -> Any:
        from parsl.providers import LocalProvider

        return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=worker_init(ctx))

    def parsl_executor_options(self, ctx, tasks: list) -> dict[str, Any]:
        return {"max_workers_per_node": 2, "cores_per_worker": tasks[0].resources.cores, "available_accelerators": []}

    def snakemake_profile(self, ctx) -> dict[str, Any]:
        part = self.site.partitions[self.site.default_partition]
        return {"cores": part.cores_per_node}
