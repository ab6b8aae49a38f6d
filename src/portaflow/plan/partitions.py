"""Pick the partition for a request, say why it won (and why the others lost), or explain exactly why none fits.

The order (after sbatch users' and admins' practice, issue 16): a partition must fit the request and accept it
(`min_cores`, `min_nodes`, `min_memory`) and be open to automatic choice (`auto`). Among those: for a CPU step, the
fewest GPUs (it must not queue behind GPU jobs); then the admin's `priority`; fewest GPUs per node; the fewest cores
charged (a whole node on an `exclusive` partition: small tasks go to shared ones); the shortest time limit (short
partitions start sooner); fewest cores, least memory; the default partition; the order the admin wrote them in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from portaflow.errors import PlanError
from portaflow.plan.model import TaskResources
from portaflow.spec.site import Partition, SiteProfile
from portaflow.units import describe_memory, describe_walltime


def shortfalls(request: TaskResources, name: str, part: Partition) -> list[str]:
    """Each way `part` is too small for `request`, in words ('needs 3 days; partition gpu allows at most 2 days')."""
    return [f"needs {need}; partition {name} {has}" for need, has in _misfits(request, part)]


def _misfits(request: TaskResources, part: Partition) -> list[tuple[str, str]]:
    """(what the request needs, what the partition has) for each limit it breaks, maxima and minima."""
    out = []
    if request.walltime_s > part.max_walltime:
        out.append((describe_walltime(request.walltime_s), f"allows at most {describe_walltime(part.max_walltime)}"))
    if request.cores > part.cores_per_node:
        out.append((f"{request.cores} cores", f"has {part.cores_per_node} per node"))
    if request.memory_mib > part.memory_per_node:
        out.append((f"{describe_memory(request.memory_mib)} of memory", f"has {describe_memory(part.memory_per_node)} per node"))
    if request.gpus > part.gpus_per_node:
        out.append((f"{request.gpus} GPUs", f"has {part.gpus_per_node} GPUs per node" if part.gpus_per_node else "has no GPUs"))
    if request.gpu_model and request.gpu_model not in part.gpu_models:
        out.append((f"GPU model {request.gpu_model}", f"offers: {', '.join(part.gpu_models) or 'none'}"))
    if request.nodes > part.max_nodes:
        out.append((f"{request.nodes} nodes", f"allows at most {part.max_nodes}"))
    if request.cores < part.min_cores:
        out.append((f"{request.cores} cores", f"takes jobs of at least {part.min_cores}"))
    if request.nodes < part.min_nodes:
        out.append((f"{request.nodes} nodes", f"takes jobs of at least {part.min_nodes}"))
    if part.max_memory_per_core is not None and request.memory_mib > part.max_memory_per_core * request.cores:
        out.append((f"{describe_memory(request.memory_mib)} for {request.cores} cores",
                    f"allows at most {describe_memory(part.max_memory_per_core)} per core"))
    if request.memory_mib < part.min_memory:
        out.append((f"{describe_memory(request.memory_mib)} of memory", f"takes jobs of at least {describe_memory(part.min_memory)}"))
    return out


def with_partition_gpu_model(request: TaskResources, part: Partition) -> TaskResources:
    """A GPU request that names no model gets the partition's `default_gpu_model`, so that every scheduler asks for
    the model that partition gives (a T4 partition's job must not ask for an L40s) and `plan` shows it."""
    if request.gpus and not request.gpu_model and part.default_gpu_model:
        return dataclasses.replace(request, gpu_model=part.default_gpu_model)
    return request


def charged_cores(request: TaskResources, part: Partition) -> int:
    """Cores a job is charged for: a whole node per node on an `exclusive` partition, else what it asks for."""
    return (part.cores_per_node if part.exclusive else request.cores) * request.nodes


_Criterion = tuple[str, Callable[[TaskResources, Partition, bool, int], Any], Callable[[Any, Any], str]]
"""(name, key of a partition (lower wins), why a partition with a worse key lost: f(its key, the winner's key))."""

_ORDER: list[_Criterion] = [
    ("gpu nodes", lambda r, p, d, i: p.gpus_per_node if not r.gpus else 0, lambda mine, win: f"GPU nodes ({mine} per node) for a CPU step"),
    ("priority", lambda r, p, d, i: -p.priority, lambda mine, win: f"lower priority ({-mine} < {-win})"),
    ("gpus", lambda r, p, d, i: p.gpus_per_node, lambda mine, win: f"more GPUs per node ({mine})"),
    ("charged", lambda r, p, d, i: charged_cores(r, p),
     lambda mine, win: f"charged {mine} cores (whole nodes)"),
    ("walltime", lambda r, p, d, i: p.max_walltime, lambda mine, win: f"longer limit ({describe_walltime(mine)})"),
    ("cores", lambda r, p, d, i: p.cores_per_node, lambda mine, win: f"more cores per node ({mine})"),
    ("memory", lambda r, p, d, i: p.memory_per_node, lambda mine, win: f"more memory per node ({describe_memory(mine)})"),
    ("default", lambda r, p, d, i: not d, lambda mine, win: "not the default"),
    ("order", lambda r, p, d, i: i, lambda mine, win: "listed later"),
]


def _key(site: SiteProfile, request: TaskResources, name: str) -> tuple:
    part = site.partitions[name]
    index = list(site.partitions).index(name)
    return tuple(key(request, part, name == site.default_partition, index) for _, key, _ in _ORDER)


def choose_partition(site: SiteProfile, request: TaskResources, who: str) -> str:
    """The partition a request runs on (see the module's docstring for the order); PlanError when none fits."""
    return choose_partition_explained(site, request, who)[0]


def choose_partition_explained(site: SiteProfile, request: TaskResources, who: str) -> tuple[str, str]:
    """The partition a request runs on, and one line saying why: what decided, and why each other partition lost.

    e.g. 'shared: fewest cores charged; main: whole nodes, charged 128 cores; long: longer limit (7 days); gpu: needs
    no GPUs... ' (the step is named once, by whoever prints the line)."""
    misfits = {name: _misfits(request, part) for name, part in site.partitions.items()}
    candidates = [n for n, m in misfits.items() if not m and site.partitions[n].auto]
    if not candidates:
        closed = [n for n, m in misfits.items() if not m]
        if closed:
            raise PlanError(f"{who} cannot run on site {site.name}: it fits only partition(s) {', '.join(closed)}, which the plan does "
                            f"not choose by itself (auto: false); turn one on with --site-set partitions.{closed[0]}.auto=true")
        # Explain with the partitions that miss by the fewest limits.
        fewest = min(len(m) for m in misfits.values())
        reasons = [f"needs {need}; partition {name} {has}" for name, m in misfits.items() if len(m) == fewest for need, has in m]
        raise PlanError(f"{who} cannot run on site {site.name}: " + "; ".join(f"{who} {r}" for r in reasons))
    keys = {n: _key(site, request, n) for n in candidates}
    winner = min(candidates, key=keys.__getitem__)
    losers = []
    for name in site.partitions:
        if name == winner:
            continue
        if misfits[name]:
            need, has = misfits[name][0]
            losers.append(f"{name}: needs {need}, {has}")
        elif not site.partitions[name].auto:
            losers.append(f"{name}: not chosen automatically (auto: false)")
        else:
            index = next(i for i, (a, b) in enumerate(zip(keys[name], keys[winner], strict=True)) if a != b)
            why = _ORDER[index][2]
            losers.append(f"{name}: {why(keys[name][index], keys[winner][index])}")
    if not losers:
        return winner, f"{winner}: the only partition"
    fits = "the only one that fits" if sum(not m for m in misfits.values()) == 1 else "wins"
    return winner, f"{winner} {fits}; " + "; ".join(losers)
