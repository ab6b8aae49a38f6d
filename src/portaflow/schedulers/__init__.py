"""One small module per scheduler: turn a planned task's request into that scheduler's terms.

Each module knows its scheduler's flags and nothing of engines; the engines feed what a module
returns into their own job-script generation (Parsl providers, Snakemake executor plugins), so
what `portaflow render` shows is what the engine really hands to the scheduler.
"""

from __future__ import annotations

from portaflow.schedulers.base import Scheduler
from portaflow.schedulers.htcondor import HTCondorScheduler
from portaflow.schedulers.kubernetes import KubernetesScheduler
from portaflow.schedulers.local import LocalScheduler
from portaflow.schedulers.slurm import SlurmScheduler

SCHEDULERS: dict[str, type[Scheduler]] = {"local": LocalScheduler, "slurm": SlurmScheduler}
SCHEDULERS["kubernetes"] = KubernetesScheduler
SCHEDULERS["htcondor"] = HTCondorScheduler


def scheduler_for(name: str) -> type[Scheduler]:
    """The scheduler class for a site's `scheduler:` value."""
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise NotImplementedError(f"scheduler {name!r} is not supported yet (supported: {', '.join(SCHEDULERS)})") from None


__all__ = ["SCHEDULERS", "Scheduler", "scheduler_for"]
