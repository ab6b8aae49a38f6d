"""The podman/docker containers a run's steps started: labelled with the run's id, found and stopped by it.

Why: a step run in a podman or docker container does not run as a child of the step's shell. The runtime's client
(`podman run`) asks a monitor (conmon, containerd-shim) to start the container, and the monitor is a daemon of its
own: outside the driver's session, with the container's environment, not the run's. When the driver is killed
with -9, the killed run's processes are found by the run id in their environment and stopped
(`engines.leftovers`), but that stops only the client: the container itself goes on running, writing the outputs
the rerun is about to write. And on SIGINT/SIGTERM, the client passes the signal to the container's first process,
which, as PID 1 of its own namespace, ignores it unless it set a handler (`bash -c 'sleep 600'` does not).

So every container a step starts carries the label `portaflow.run-id=<run id>` (`label_options`, added by
`containers.wrap`; the job's shell fills in $PORTAFLOW_RUN_ID, which every process of a run inherits), and the
runtime itself is asked for the run's containers (`ps --filter label=...`): the rerun after `kill -9` stops and
removes them before it submits anything, and an interrupted run stops its own before it ends.
"""

from __future__ import annotations

import logging

from portaflow.commands import CommandError, run_command
from portaflow.spec.site import SiteProfile

log = logging.getLogger(__name__)

LABEL = "portaflow.run-id"
"""The label every container a step starts carries; its value is the run's id."""

RUN_ID_VARIABLE = "PORTAFLOW_RUN_ID"
"""Set in the environment of every process a run starts (engines.leftovers.RUN_ENV, not imported: layers look down)."""

LABELLED_RUNTIMES = ("podman", "docker")
"""Runtimes whose containers outlive the process that asked for them (Apptainer's run as the step's children)."""


def label_options() -> list[str]:
    """The `run` options that label a container with the run's id, as shell words: the job's shell expands the
    variable where the step runs (empty for a step run by hand, outside a run)."""
    return [f'--label {LABEL}="${{{RUN_ID_VARIABLE}:-}}"']


def runtime_of(site: SiteProfile) -> str | None:
    """The podman/docker binary a site's steps run their containers with, or None where containers are not daemons'."""
    settings = site.container
    if settings.runtime not in LABELLED_RUNTIMES:
        return None
    return settings.executable or settings.runtime


def containers_of_run(executable: str, run_id: str) -> list[str]:
    """The ids of the containers (running or not yet removed) labelled with the run's id, as the runtime lists them."""
    result = run_command([executable, "ps", "--all", "--filter", f"label={LABEL}={run_id}", "--format", "{{.ID}}"], timeout=60)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def stop_run_containers(site: SiteProfile, run_id: str, why: str, grace_s: int = 5) -> list[str]:
    """Stop (SIGTERM, SIGKILL after `grace_s`) and remove the containers of run `run_id` on this machine, and say
    so; `why` names the run for the message ("run X (killed)"). Returns the ids of those stopped. A runtime that
    cannot answer is logged, not raised: the rest of the clean-up still happens, and the person learns what is left."""
    executable = runtime_of(site)
    if executable is None or not run_id:
        return []
    try:
        found = containers_of_run(executable, run_id)
        if not found:
            log.info("%s left no %s container running", why, executable)
            return []
        log.warning("%s left %d %s container(s) (label %s=%s); stopping and removing them: %s", why, len(found), executable, LABEL,
                    run_id, ", ".join(found))
        run_command([executable, "stop", "--time", str(grace_s), *found], check=False, timeout=grace_s + 60)
        run_command([executable, "rm", "--force", *found], check=False, timeout=60)  # those run with --rm may be gone already
        left = containers_of_run(executable, run_id)
    except CommandError as exc:
        log.error("%s: could not stop its %s containers: %s", why, executable, exc)
        return []
    if left:
        log.error("%s: %d %s container(s) could not be removed: %s", why, len(left), executable, ", ".join(left))
    return [c for c in found if c not in left]
