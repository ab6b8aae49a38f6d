"""Checks that touch the world, run after planning and before anything is submitted.

Why separate from the plan: the plan stays pure (printable and testable anywhere); these checks
need this machine: inputs on disk, a container runtime and its images, a scheduler that answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from portaflow.containers import container_call
from portaflow.containers.images import image_present, uses_files
from portaflow.errors import PreflightError
from portaflow.plan.model import Plan
from portaflow.schedulers import adapter_for
from portaflow.spec.loading import LoadedSite
from portaflow.spec.site import SiteProfile


def preflight(plan: Plan, loaded: LoadedSite, workdir: Path, check_scheduler: bool = True) -> None:
    """Raise PreflightError listing everything missing; return quietly when the run can start."""
    site = loaded.site
    problems: list[str] = []
    for path, readers in plan.external_inputs.items():
        if not (workdir / path).exists():
            readers_text = ", ".join(plan.by_id[r].display for r in readers[:3]) + (" ..." if len(readers) > 3 else "")
            problems.append(f"input {path} does not exist and no step produces it (needed by {readers_text}; looked in {workdir})")
    problems += container_problems(plan, site)
    if check_scheduler:
        problems += adapter_for(loaded).connection_problems()
    if problems:
        raise PreflightError("preflight failed; nothing was submitted:\n  " + "\n  ".join(problems))


def container_problems(plan: Plan, site: SiteProfile) -> list[str]:
    """Each container the plan uses whose runtime or image is missing on this machine (one line each)."""
    problems = []
    checked: set[str] = set()
    for task in plan.tasks:
        call = container_call(site, task.container)
        if call is None or task.container in checked:
            continue
        checked.add(task.container)
        if shutil.which(call.executable) is None:
            problems.append(
                f"step {task.step}: container {task.container!r} needs runtime {call.runtime} ({call.executable}), "
                f"which site {site.name} expects but is not on PATH"
            )
            continue
        if not image_present(call):
            build = f"; build it with `portaflow containers build {task.container} --runtime {call.runtime}`" if not uses_files(call) else ""
            problems.append(f"step {task.step}: image {call.image} for container {task.container!r} ({call.runtime}, "
                            f"as site {site.name} expects) was not found{build}")
    return problems
