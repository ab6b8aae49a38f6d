"""The Executor of a portaflow Snakemake executor plugin whose upstream plugin is not installed.

Why: Snakemake imports every executor plugin it finds on its path, so portaflow's plugins (which subclass the
upstream ones) must import without them (portaflow's base install has neither); using one then says what to install.
"""

from __future__ import annotations

from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor


def unavailable_executor(name: str, missing: ImportError) -> type[RemoteExecutor]:
    """An Executor class for `portaflow-<name>` that refuses to start, naming the missing plugin and the extra to install."""
    why = str(missing)

    class Executor(RemoteExecutor):
        def __init__(self, workflow: Any, logger: Any) -> None:
            raise WorkflowError(f"executor portaflow-{name} needs snakemake-executor-plugin-{name} ({why}): "
                                f"pip install 'portaflow[{name}]'")

        def run_job(self, job: Any) -> None: ...

        async def check_active_jobs(self, active_jobs: Any) -> Any:
            yield None

        def cancel_jobs(self, active_jobs: Any) -> None: ...

    return Executor
