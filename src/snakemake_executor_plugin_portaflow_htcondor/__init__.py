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
- Each job's executable follows portaflow's rule (`portaflow.schedulers.htcondor.job_executable`, which Parsl's jobs
  follow too): a program on the execute node (the driver's Python only where the filesystem is shared, else
  `/usr/bin/env python`), never a transferred copy of the driver's venv Python, run through the site's job wrapper
  (`--portaflow-htcondor-job-wrapper`) where the profile names one. Set in the same `_log_resource_requests` step.
- `--portaflow-htcondor-drop-storage-settings` (pools without an object store): jobs get no storage plugin settings,
  neither the `--storage-*` arguments nor the `SNAKEMAKE_STORAGE_*` variables Snakemake passes for every installed
  storage plugin (through the public `envvars()` and `format_job_exec()`).

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

        job_wrapper: Optional[str] = field(  # noqa: UP045
            default=None,
            metadata={"help": "the site's job wrapper (htcondor.job_wrapper): each job's executable, called with the job's "
                              "command as its arguments (portaflow.schedulers.htcondor.job_executable)"},
        )
        drop_storage_settings: bool = field(
            default=False,
            metadata={"help": "a pool without an object store: jobs get none of the installed storage plugins' settings "
                              "(no --storage-* arguments, no SNAKEMAKE_STORAGE_* variables)"},
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

        def envvars(self) -> dict:
            """Snakemake's variables for a job, without the storage plugins' (SNAKEMAKE_STORAGE_S3_REGION...) where the
            pool has no object store: they would be written into every submit description's `environment`."""
            envvars = dict(super().envvars())
            if self.workflow.executor_settings.drop_storage_settings:
                for name in self.workflow.spawned_job_args_factory.get_storage_provider_envvars():
                    envvars.pop(name, None)
            return envvars

        def format_job_exec(self, job: Any) -> str:
            """The job's Snakemake command, without the storage plugins' arguments (`--storage-s3-retries 5`) where the
            pool has no object store. Each removed argument is the exact text Snakemake's own factory formats for the
            job's command line (`get_storage_provider_args`), so nothing else can be cut."""
            command = super().format_job_exec(job)
            if self.workflow.executor_settings.drop_storage_settings:
                for argument in self.workflow.spawned_job_args_factory.get_storage_provider_args():
                    command = command.replace(f" {argument}", "", 1)
            return command

        def _log_resource_requests(self, submit_dict: dict) -> None:
            self._run_through_site(submit_dict)
            super()._log_resource_requests(submit_dict)
            if self.workflow.executor_settings.capture:
                raise _Described(submit_dict)

        def _run_through_site(self, submit_dict: dict) -> None:
            """The job's executable by portaflow's rule (`portaflow.schedulers.htcondor.job_executable`, as Parsl's jobs):
            upstream makes the driver's `sys.executable` the executable, which HTCondor then transfers; on a pool
            without a shared filesystem that copy of a venv's Python cannot run, so the job runs the node's `python`
            (Snakemake's own choice for such jobs, `get_python_executable`) through /usr/bin/env; with a job wrapper,
            the wrapper runs either. Taken at `_log_resource_requests`, when the description is complete."""
            from snakemake_interface_executor_plugins.settings import SharedFSUsage

            from portaflow.schedulers.htcondor import job_executable

            arguments = submit_dict["arguments"]
            if SharedFSUsage.SOFTWARE_DEPLOYMENT in self.workflow.storage_settings.shared_fs_usage:
                program = submit_dict["executable"]  # the driver's Python, which the execute nodes see
            else:
                program, arguments = "/usr/bin/env", f"{self.get_python_executable()} {arguments}"
            submit_dict.update(job_executable(program, arguments, self.workflow.executor_settings.job_wrapper))

        def _write(self, out_dir: Path, submit_dict: dict) -> None:
            """The description as the plugin hands it to `Schedd.submit` (`htcondor2.Submit(submit_dict)`), as text."""
            import htcondor2

            description = htcondor2.Submit(submit_dict)
            self._captured += 1
            rule = str(description.get("batch_name", f"job-{self._captured}")).rsplit("-", 1)[0]
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{rule}.sub").write_text(str(description))
