"""Scheduler adapters, one per scheduler, found by name in a registry that others can extend.

Each adapter (schedulers/base.py) holds everything portaflow knows about one scheduler: request ->
options, the Parsl provider, the Snakemake executor settings, Dask workers, render captures, probe and
cancel. Engines, runtime and driver ask the adapter; no other module compares scheduler names.

A third party adds a scheduler without touching portaflow: a `Scheduler` subclass in its own package,
named under the entry point group `portaflow.schedulers` in that package's metadata, e.g.

    [project.entry-points."portaflow.schedulers"]
    pbs = "portaflow_pbs:PBSScheduler"

or, in code loaded before planning, `@register_scheduler` on the class.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TypeVar

from portaflow.errors import SpecError
from portaflow.schedulers.base import Scheduler
from portaflow.schedulers.htcondor import HTCondorScheduler
from portaflow.schedulers.kubernetes import KubernetesScheduler
from portaflow.schedulers.local import LocalScheduler
from portaflow.schedulers.slurm import SlurmScheduler
from portaflow.spec.loading import LoadedSite

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "portaflow.schedulers"
SCHEDULERS: dict[str, type[Scheduler]] = {}
"""Adapters by the name a site profile's `scheduler:` uses."""

S = TypeVar("S", bound=type[Scheduler])


def register_scheduler(cls: S) -> S:
    """Class decorator: make an adapter available under its `name`."""
    SCHEDULERS[cls.name] = cls
    return cls


for _adapter in (LocalScheduler, SlurmScheduler, HTCondorScheduler, KubernetesScheduler):
    register_scheduler(_adapter)

_entry_points_loaded = False


def _load_entry_points() -> None:
    """Adapters other packages declare (group `portaflow.schedulers`); loaded once, on first look-up."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except Exception as exc:  # a broken third-party adapter must not stop the others
            log.warning("scheduler adapter %s (%s) could not be loaded: %s", entry.name, entry.value, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
            log.warning("scheduler adapter %s (%s) is not a portaflow Scheduler subclass; ignored", entry.name, entry.value)
            continue
        SCHEDULERS.setdefault(entry.name, cls)


def known_schedulers() -> list[str]:
    """Every scheduler name a site profile may use here (built in and installed adapters)."""
    _load_entry_points()
    return sorted(SCHEDULERS)


def scheduler_for(name: str) -> type[Scheduler]:
    """The adapter class for a site's `scheduler:` value."""
    if name not in SCHEDULERS:
        _load_entry_points()
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise NotImplementedError(f"scheduler {name!r} is not supported (known: {', '.join(known_schedulers())})") from None


def adapter_for(loaded: LoadedSite) -> Scheduler:
    """The adapter for a loaded site profile; an unknown scheduler is a problem at the profile's `scheduler:` line."""
    try:
        cls = scheduler_for(loaded.site.scheduler)
    except NotImplementedError:
        raise SpecError([loaded.problem(("scheduler",), f"unknown scheduler {loaded.site.scheduler!r}",
                                        f"known: {', '.join(known_schedulers())}; others come from installed adapters")]) from None
    return cls(loaded)


__all__ = ["adapter_for", "ENTRY_POINT_GROUP", "SCHEDULERS", "Scheduler", "known_schedulers", "register_scheduler", "scheduler_for"]
