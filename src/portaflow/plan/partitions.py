"""Pick the smallest partition that fits a request, or explain exactly why none does."""

from __future__ import annotations

import dataclasses

from portaflow.errors import PlanError
from portaflow.plan.model import TaskResources
from portaflow.spec.site import Partition, SiteProfile
from portaflow.units import describe_memory, describe_walltime


def shortfalls(request: TaskResources, name: str, part: Partition) -> list[str]:
    """Each way `part` is too small for `request`, in words ('needs 3 days; partition gpu allows at most 2 days')."""
    out = []
    if request.walltime_s > part.max_walltime:
        out.append(f"needs {describe_walltime(request.walltime_s)}; partition {name} allows at most {describe_walltime(part.max_walltime)}")
    if request.cores > part.cores_per_node:
        out.append(f"needs {request.cores} cores; partition {name} has {part.cores_per_node} per node")
    if request.memory_mib > part.memory_per_node:
        out.append(f"needs {describe_memory(request.memory_mib)} of memory; partition {name} has {describe_memory(part.memory_per_node)} per node")
    if request.gpus > part.gpus_per_node:
        have = f"{part.gpus_per_node} GPUs per node" if part.gpus_per_node else "no GPUs"
        out.append(f"needs {request.gpus} GPUs; partition {name} has {have}")
    if request.gpu_model and request.gpu_model not in part.gpu_models:
        offered = ", ".join(part.gpu_models) or "none"
        out.append(f"needs GPU model {request.gpu_model}; partition {name} offers: {offered}")
    if request.nodes > part.max_nodes:
        out.append(f"needs {request.nodes} nodes; partition {name} allows at most {part.max_nodes}")
    return out


def with_partition_gpu_model(request: TaskResources, part: Partition) -> TaskResources:
    """A GPU request that names no model gets the partition's `default_gpu_model`, so that every scheduler asks for
    the model that partition gives (a T4 partition's job must not ask for an L40s) and `plan` shows it."""
    if request.gpus and not request.gpu_model and part.default_gpu_model:
        return dataclasses.replace(request, gpu_model=part.default_gpu_model)
    return request


def choose_partition(site: SiteProfile, request: TaskResources, who: str) -> str:
    """The smallest partition that fits: fewest GPUs, then shortest limit, fewest cores, least memory.

    Why this order: a CPU step must not queue behind GPU jobs, and short partitions start sooner.
    Ties go to the site's default partition, then to the order the admin wrote them in.
    """
    fitting = [(name, part) for name, part in site.partitions.items() if not shortfalls(request, name, part)]
    if fitting:
        order = list(site.partitions)
        default = site.default_partition
        fitting.sort(key=lambda np: (
            np[1].gpus_per_node, np[1].max_walltime, np[1].cores_per_node, np[1].memory_per_node,
            np[0] != default, order.index(np[0]),
        ))
        return fitting[0][0]
    # Explain with the partitions that miss by the fewest limits.
    misses = {name: shortfalls(request, name, part) for name, part in site.partitions.items()}
    fewest = min(len(m) for m in misses.values())
    reasons = [r for name, m in misses.items() if len(m) == fewest for r in m]
    raise PlanError(f"{who} cannot run on site {site.name}: " + "; ".join(f"{who} {r}" for r in reasons))
