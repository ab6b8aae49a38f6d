"""Snakemake executor plugin `portaflow-htcondor`: snakemake-executor-plugin-htcondor as portaflow runs it.

What differs from the upstream plugin (whose Executor and settings this one extends, unchanged otherwise):
- `common_settings` is this plugin's own: no `auto_deploy_default_storage_provider`. Upstream prefixes every job
  with `pip install --target .snakemake/pip-deployments <every storage plugin installed on the driver>` (0.3.0 then
  submits `python install ...`): a download on worker nodes, of code that may differ from the driver's. portaflow's
  images and the site provide the storage plugins instead.
- `--portaflow-htcondor-capture DIR` (portaflow render only): each job's submit description is written to
  DIR/<rule>.sub instead of being submitted; nothing contacts a schedd or a credd. The description is the one the
  upstream `run_job` builds, taken at the last step it takes before building `htcondor2.Submit` from it
  (`_log_resource_requests(submit_dict)`, a method of its own): written against snakemake-executor-plugin-htcondor
  0.3.0, which pyproject.toml pins.

Snakemake finds the plugin by its module name (`snakemake_executor_plugin_<name>`, the registry of
snakemake-interface-executor-plugins); portaflow puts its folder on Snakemake's PYTHONPATH. Where the upstream plugin
is not installed the module still imports (Snakemake imports every plugin it finds), and using it says what is missing.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.settings import CommonSettings

# No `from __future__ import annotations` here: Snakemake reads the settings' field types at run time.

try:
    import snakemake_executor_plugin_htcondor as upstream
except ImportError as missing:  # Snakemake imports every plugin on its path: stay importable, refuse when used
    from portaflow.engines.snakemake_plugin_fallback import unavailable_executor

    common_settings: CommonSettings = CommonSettings(non_local_exec=True, implies_no_shared_fs=False, job_deploy_sources=False)
    Executor = unavailable_executor("htcondor", missing)  # type: ignore[misc]
else:
    @dataclass
    class ExecutorSettings(upstream.ExecutorSettings):
        # Optional[...], not `str | None`: Snakemake hands the annotation to argparse, which needs typing's form.
        capture: Optional[str] = field(  # noqa: UP045
            default=None,
            metadata={"help": "portaflow render: write each job's submit description to this directory (RULE.sub) "
                              "instead of submitting it (nothing contacts a schedd)"},
        )

    common_settings: CommonSettings = replace(upstream.common_settings, auto_deploy_default_storage_provider=False)

    class _Described(Exception):
        """Carries a finished submit description out of the upstream run_job (capture mode only)."""

        def __init__(self, submit_dict: dict) -> None:
            super().__init__("submit description captured")
            self.submit_dict = submit_dict

    class Executor(upstream.Executor):  # type: ignore[no-redef]
        """The upstream executor; with `capture` set, what it would submit is written to files instead."""

        def __post_init__(self) -> None:
            super().__post_init__()
            self._captured = 0

        def run_job(self, job: Any) -> None:
            capture = self.workflow.executor_settings.capture
            if not capture:
                return super().run_job(job)
            try:
                super().run_job(job)
            except _Described as described:
                self._write(Path(capture), described.submit_dict)
                self.report_job_submission(SubmittedJobInfo(job=job, external_jobid=self._captured))
                return None
            raise WorkflowError("portaflow-htcondor: the htcondor plugin's run_job no longer calls _log_resource_requests "
                                "with its finished submit description (written against 0.3.0)")

        def _log_resource_requests(self, submit_dict: dict) -> None:
            super()._log_resource_requests(submit_dict)
            if self.workflow.executor_settings.capture:
                raise _Described(submit_dict)

        def _write(self, out_dir: Path, submit_dict: dict) -> None:
            """The description as the plugin hands it to `Schedd.submit` (`htcondor2.Submit(submit_dict)`), as text."""
            import htcondor2

            description = htcondor2.Submit(submit_dict)
            self._captured += 1
            rule = str(description.get("batch_name", f"job-{self._captured}")).rsplit("-", 1)[0]
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{rule}.sub").write_text(str(description))
