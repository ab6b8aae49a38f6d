"""Checks that touch the world, run after planning and before anything is submitted.

Why separate from the plan: the plan stays pure (printable and testable anywhere); these checks
need this machine: inputs on disk, a container runtime and its images, a scheduler that answers.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from portaflow.containers import container_call
from portaflow.errors import PreflightError
from portaflow.plan.model import Plan
from portaflow.spec.site import SiteProfile


def preflight(plan: Plan, site: SiteProfile, workdir: Path, check_scheduler: bool = True) -> None:
    """Raise PreflightError listing everything missing; return quietly when the run can start."""
    problems: list[str] = []
    for path, readers in plan.external_inputs.items():
        if not (workdir / path).exists():
            readers_text = ", ".join(plan.by_id[r].display for r in readers[:3]) + (" ..." if len(readers) > 3 else "")
            problems.append(f"input {path} does not exist and no step produces it (needed by {readers_text}; looked in {workdir})")
    problems += _container_problems(plan, site)
    if check_scheduler:
        problems += _scheduler_problems(site)
    if problems:
        raise PreflightError("preflight failed; nothing was submitted:\n  " + "\n  ".join(problems))


def _container_problems(plan: Plan, site: SiteProfile) -> list[str]:
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
        if not _image_present(call.runtime, call.executable, call.image):
            problems.append(f"step {task.step}: image {call.image} for container {task.container!r} ({call.runtime}) was not found")
    return problems


def _image_present(runtime: str, executable: str, image: str) -> bool:
    if image.startswith(("docker://", "oras://", "library://", "shub://")):
        return True  # pulled at run time by the runtime itself; a site may forbid that on compute nodes
    if runtime in ("apptainer", "singularity"):
        return Path(image).exists()
    result = subprocess.run([executable, "image", "exists", image], capture_output=True)
    return result.returncode == 0


def _scheduler_problems(site: SiteProfile) -> list[str]:
    if site.scheduler == "slurm":
        if shutil.which("sbatch") is None:
            return [f"site {site.name} uses SLURM but sbatch is not on PATH"]
        result = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            return [f"site {site.name}: SLURM does not answer (sinfo: {result.stderr.strip()})"]
    return []
