"""Checks that touch the world, run after planning and before anything is submitted.

Why separate from the plan: the plan stays pure (printable and testable anywhere); these checks
need this machine: inputs on disk, a container runtime and its images, a scheduler that answers.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from portaflow.commands import CommandError
from portaflow.containers import container_call
from portaflow.containers.images import image_present, uses_files
from portaflow.errors import PreflightError
from portaflow.plan.model import Plan
from portaflow.schedulers import adapter_for
from portaflow.spec.loading import LoadedSite
from portaflow.spec.site import SiteProfile
from portaflow.spec.variables import UnsetVariable

log = logging.getLogger(__name__)


def preflight(plan: Plan, loaded: LoadedSite, workdir: Path, check_scheduler: bool = True) -> None:
    """Raise PreflightError listing everything missing; return quietly when the run can start."""
    site = loaded.site
    problems: list[str] = []
    log.info("preflight: %d input(s) no step produces, looked for in %s", len(plan.external_inputs), workdir)
    for path, readers in plan.external_inputs.items():
        if not (workdir / path).exists():
            readers_text = ", ".join(plan.by_id[r].display for r in readers[:3]) + (" ..." if len(readers) > 3 else "")
            problems.append(f"input {path} does not exist and no step produces it (needed by {readers_text}; looked in {workdir})")
    problems += container_problems(plan, site)
    if check_scheduler:
        log.info("preflight: asking %s whether jobs can be submitted from here", site.scheduler)
        problems += adapter_for(loaded).connection_problems()
    else:
        log.debug("preflight: scheduler connection not checked (nothing will be submitted)")
    if problems:
        raise PreflightError("preflight failed; nothing was submitted:\n  " + "\n  ".join(problems))
    log.info("preflight: ready")


def container_problems(plan: Plan, site: SiteProfile) -> list[str]:
    """Each container the plan uses whose runtime or image is missing on this machine (one line each)."""
    problems = []
    checked: set[str] = set()
    for task in plan.tasks:
        call = container_call(site, task.container)
        if call is None or task.container in checked:
            continue
        checked.add(task.container)
        found = shutil.which(call.executable)
        log.info("preflight: container %r: runtime %s (%s), image %s", task.container, call.runtime, found or "not on PATH", call.image)
        if found is None:
            problems.append(
                f"step {task.step}: container {task.container!r} needs runtime {call.runtime} ({call.executable}), "
                f"which site {site.name} expects but is not on PATH"
            )
            continue
        try:
            present = image_present(call)
        except UnsetVariable as exc:
            key = "container.images" if task.container in site.container.images else "container.image_dir"
            problems.append(f"step {task.step}: image {call.image} for container {task.container!r} ({key} of site {site.name}) "
                            f"cannot be checked here: {', '.join('$' + n for n in exc.names)} not set on this machine")
            continue
        except CommandError as exc:
            problems.append(f"step {task.step}: could not check image {call.image} for container {task.container!r}: {exc}")
            continue
        if not present:
            build = f"; build it with `portaflow containers build {task.container} --runtime {call.runtime}`" if not uses_files(call) else ""
            problems.append(f"step {task.step}: image {call.image} for container {task.container!r} ({call.runtime}, "
                            f"as site {site.name} expects) was not found{build}")
    return problems
