"""The shared shape of a scheduler module (after dask-jobqueue's Job base class)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from portaflow.errors import InputError, SpecError
from portaflow.plan.model import TaskResources
from portaflow.spec.loading import LoadedSite


class Scheduler:
    """Translate requests into scheduler directives; check a profile's escape hatch.

    `managed_flags` are the options portaflow itself sets from the plan: an admin's
    `extra_directives` may not repeat them, or a job would silently get the wrong partition,
    time or memory (the last flag wins in sbatch).
    """

    name: ClassVar[str]
    managed_flags: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, loaded: LoadedSite):
        self.loaded = loaded
        self.site = loaded.site

    def directives(self, request: TaskResources, partition: str) -> list[str]:
        """The scheduler options for one job of this size on this partition."""
        return []

    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """Cancel every job of a run still queued or running; return the ids cancelled."""
        return []

    def connection_problems(self) -> list[str]:
        """Why jobs cannot be submitted from this machine now (empty: the scheduler answers). Asked before a
        run submits anything, and by the matrix to decide between running and rendering a cell."""
        return []

    def check_rendered(self, files: list[Path]) -> list[str]:
        """Problems the scheduler's own tools find in rendered files (job scripts, submit descriptions,
        manifests). Why: a site that cannot be reached from here is still checked as far as offline
        tools allow, e.g. in the portability matrix's rendered-only cells."""
        return []

    def runs_containers(self) -> bool:
        """Whether the scheduler itself starts each job in its step's image (then the command is not wrapped again)."""
        return False

    @classmethod
    def flag_name(cls, directive: str) -> str:
        """'--mem=4G' -> '--mem'; '-p gpu' -> '-p'."""
        text = directive.strip()
        for prefix in ("#SBATCH", "#PBS"):
            if text.startswith(prefix):
                text = text[len(prefix):].strip()
        return text.split("=", 1)[0].split(None, 1)[0] if text else text

    def check(self) -> None:
        """Refuse extra directives that override a managed flag (SpecError pointing at the line)."""
        problems = []
        for index, directive in enumerate(self.site.extra_directives):
            flag = self.flag_name(directive)
            if flag in self.managed_flags:
                problems.append(self.loaded.problem(
                    ("extra_directives", index), f"{directive!r} sets {flag}, which portaflow manages from the plan",
                    "set it through the profile's own key (partition limits, account, slurm.qos, slurm.memory_rule, slurm.gpu_syntax) or the step's resources",
                ))
        if problems:
            raise SpecError(problems)

    def check_user_values(self) -> None:
        """Before planning a run: values each user must supply (an account where the site requires one)."""
        if self.site.account_required and not self.site.account:
            raise InputError(
                f"site {self.site.name} requires an account and none is set: add --site-set account=YOUR_PROJECT "
                "or export PORTAFLOW_SITE_ACCOUNT=YOUR_PROJECT (your project or budget name, as the site's docs say)"
            )
