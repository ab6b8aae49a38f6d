"""Snakemake executor plugin `portaflow-kubernetes`: snakemake-executor-plugin-kubernetes, each Job completed from the site.

The upstream plugin builds each job's V1Job itself and has settings for a namespace, a service account, volume
claims and one image only. This plugin's Executor is the upstream one (a subclass: its own run_job builds every Job)
with its API clients wrapped: every client the plugin makes (when it starts, and again when it re-authenticates)
passes through `api_client`, which wraps its BatchV1Api so that each Job is completed from the site profile (node pool,
pull secrets and policy, labels, TTL, backoff, deadline) and checked against the API server's rules
(portaflow.schedulers.kubernetes) before the one call that creates it. What to complete it from is the run's launch
file, named by `--portaflow-kubernetes-launch` (portaflow run writes it). The Executor reaches the clients only as the
attributes `kubeapi` and `batchapi` of its own instance, which snakemake-executor-plugin-kubernetes 0.5.1 (pinned in
pyproject.toml) assigns and reads.

`common_settings` is this plugin's own: no `auto_deploy_default_storage_provider` (upstream prefixes every job with a
`pip install` of every storage plugin installed on the driver, a download inside every pod; portaflow's images carry
them). Snakemake finds the plugin by its module name; portaflow puts its folder on Snakemake's PYTHONPATH. Where the
upstream plugin is not installed the module still imports (Snakemake imports every plugin it finds), and using it
says what is missing.
"""

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import CommonSettings

# No `from __future__ import annotations` here: Snakemake reads the settings' field types at run time.

try:
    import snakemake_executor_plugin_kubernetes as upstream
except ImportError as missing:  # Snakemake imports every plugin on its path: stay importable, refuse when used
    from portaflow.engines.snakemake_plugin_fallback import unavailable_executor

    common_settings: CommonSettings = CommonSettings(non_local_exec=True, implies_no_shared_fs=True, job_deploy_sources=True)
    Executor = unavailable_executor("kubernetes", missing)  # type: ignore[misc]
else:
    @dataclass
    class ExecutorSettings(upstream.ExecutorSettings):
        # Optional[...], not `str | None`: Snakemake hands the annotation to argparse, which needs typing's form.
        launch: Optional[str] = field(  # noqa: UP045
            default=None,
            metadata={"help": "portaflow's launch file (JSON: the site profile, the run id, each rule's request), written "
                              "by portaflow run: every Job is completed from it and checked before it is created"},
        )

    common_settings: CommonSettings = replace(upstream.common_settings, auto_deploy_default_storage_provider=False)

    class Executor(upstream.Executor):  # type: ignore[no-redef]
        """The upstream executor, whose Jobs are completed from the site profile at the call that creates them."""

        def __post_init__(self) -> None:
            self._complete_job = self.job_completer()  # before the upstream __post_init__ makes its clients
            super().__post_init__()

        def job_completer(self) -> Any:
            """What completes and checks a V1Job in place: portaflow's, from the launch file."""
            launch = self.workflow.executor_settings.launch
            if not launch:
                raise WorkflowError("executor portaflow-kubernetes: --portaflow-kubernetes-launch is not set "
                                    "(portaflow run writes the launch file and names it in the profile it runs)")
            from portaflow.schedulers.kubernetes.launch import job_completer

            return job_completer(launch)

        def api_client(self, api: Any) -> Any:
            """Every API client the plugin makes goes through here: its BatchV1Api completes each Job first."""
            import kubernetes.client

            if isinstance(api, kubernetes.client.BatchV1Api):
                return CompletingBatchApi(api, self._complete_job)
            return api

        @property
        def batchapi(self) -> Any:
            return self._batchapi

        @batchapi.setter
        def batchapi(self, api: Any) -> None:
            self._batchapi = self.api_client(api)

        @property
        def kubeapi(self) -> Any:
            return self._kubeapi

        @kubeapi.setter
        def kubeapi(self, api: Any) -> None:
            self._kubeapi = self.api_client(api)

    class CompletingBatchApi:
        """BatchV1Api as the plugin uses it, with each Job completed and checked before it is created.

        Everything else (reading job status, deleting jobs) goes to the client unchanged."""

        def __init__(self, api: Any, complete: Any) -> None:
            self._api, self._complete = api, complete

        def create_namespaced_job(self, namespace: str, body: Any, *args: Any, **kwargs: Any) -> Any:
            self._complete(body)
            return self._api.create_namespaced_job(namespace, body, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._api, name)
