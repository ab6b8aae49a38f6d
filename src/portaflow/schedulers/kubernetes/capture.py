"""For `portaflow render` only: the objects each engine would create on Kubernetes, captured at the hand-off.

`python -m portaflow.schedulers.kubernetes.capture REQUEST.json` runs in its own process, whose environment names
a kubeconfig of render's own (`KUBECONFIG`, written by `capture`): a cluster at a loopback address that nothing
contacts. Why a process of its own: Parsl's KubernetesProvider and Snakemake's kubernetes plugin both load a kube
config when they are constructed (`kubernetes.config.load_kube_config()`, whose default file the client fixes from
KUBECONFIG when it is first imported), so the one public way to hand them a configuration without touching the
user's is the environment of a fresh interpreter. Both are then constructed as in a run, and their API clients are
recording stand-ins for the calls that would reach the cluster:

- Parsl: the KubernetesProvider of each executor, constructed here and handed back pickled (without its API client):
  render shows it in the Config and calls its `submit()` with a recording client behind the same completion as a
  run's (schedulers/kubernetes/parsl.py).
- Snakemake: portaflow's executor plugin (`portaflow-kubernetes`, the upstream plugin's Executor) built with its
  real constructor on a render-only `WorkflowExecutorInterface` (the interface Snakemake gives every executor), and
  its own `run_job` called for each task; its `api_client` hands it recorders. What cannot be had offline is
  Snakemake's own job command line (`snakemake --target-jobs RULE: ...`, which needs the object store), so it is a
  placeholder there.
Nothing here is used by `portaflow run`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from snakemake_interface_executor_plugins.workflow import WorkflowExecutorInterface

from portaflow.commands import run_command

RENDER_RUN_NAMESPACE = "00000000-0000-0000-0000-000000000000"
"""The Snakemake plugin names Jobs after a uuid4 per run: a fixed one keeps rendered files stable."""

_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: portaflow-render
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: portaflow-render
  user: {token: portaflow-render}
contexts:
- name: portaflow-render
  context: {cluster: portaflow-render, user: portaflow-render}
current-context: portaflow-render
"""
"""Render's kubeconfig: a server at a loopback port where nothing listens (a call would fail at once, not reach a
cluster); nothing is sent to it: every call that would be is recorded instead."""


def capture(request: dict[str, Any], launch: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the capture for REQUEST in a child process; returns what it recorded: `parsl` ({label: provider
    arguments}) -> pickled providers; `snakemake` ({profile, jobs}, with LAUNCH for completing) -> Job manifests."""
    with tempfile.TemporaryDirectory(prefix="portaflow-kube-render-") as scratch:
        paths = {name: Path(scratch) / name for name in ("kubeconfig", "launch.json", "request.json", "recorded.json")}
        paths["kubeconfig"].write_text(_KUBECONFIG)
        paths["launch.json"].write_text(json.dumps(launch or {}))
        paths["request.json"].write_text(json.dumps({**request, "launch": str(paths["launch.json"]), "out": str(paths["recorded.json"])}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE_")}  # no in-cluster fallback
        env["KUBECONFIG"] = str(paths["kubeconfig"])
        run_command([sys.executable, "-m", __name__, str(paths["request.json"])], env=env, cwd=scratch, timeout=600)
        return json.loads(paths["recorded.json"].read_text())


# -- in the child process -----------------------------------------------------------------------
def parsl_providers(request: dict[str, dict[str, Any]]) -> dict[str, str]:
    """KubernetesProviders constructed from each label's arguments (reading render's kubeconfig), pickled for the
    parent, without their API client (the parent gives each a recording one)."""
    from parsl.providers import KubernetesProvider

    out = {}
    for label, arguments in request.items():
        arguments = {**arguments, "persistent_volumes": [tuple(v) for v in arguments["persistent_volumes"]]}
        provider = KubernetesProvider(**arguments)
        provider.kube_client = None  # a client of render's kubeconfig: the parent's recorder replaces it
        out[label] = base64.b64encode(pickle.dumps(provider)).decode()
    return out


def snakemake_jobs(request: dict[str, Any], launch_path: str) -> list[dict]:
    """Each task's Job as portaflow's kubernetes plugin builds it (the upstream run_job), completed and checked."""
    from snakemake.settings.types import DeploymentSettings, ExecutionSettings, GroupSettings, RemoteExecutionSettings, StorageSettings

    from portaflow.schedulers.kubernetes.manifests import manifest
    from snakemake_executor_plugin_portaflow_kubernetes import Executor, ExecutorSettings, common_settings

    recorded: list[dict] = []

    class RecordingBatchApi:
        def __init__(self, complete: Any) -> None:
            self._complete = complete

        def create_namespaced_job(self, namespace: str, body: Any, *args: Any, **kwargs: Any) -> Any:
            recorded.append(manifest(self._complete(body)))
            return body

    class RecordingCoreApi:
        def create_namespaced_secret(self, namespace: str, body: Any, *args: Any, **kwargs: Any) -> Any:
            return body  # the run's Secret (storage credentials): not part of what is rendered

    class RenderingExecutor(Executor):
        """The plugin's executor with recording API clients and a placeholder job command line."""

        def __post_init__(self) -> None:
            super().__post_init__()
            self.run_namespace = RENDER_RUN_NAMESPACE

        def api_client(self, api: Any) -> Any:
            import kubernetes.client

            return RecordingBatchApi(self._complete_job) if isinstance(api, kubernetes.client.BatchV1Api) else RecordingCoreApi()

        def format_job_exec(self, job: Any) -> str:
            return (f"snakemake --target-jobs '{job.rule_name}:' ...  "
                    "# Snakemake writes the full job command (storage, profile, sources) at run time")

        def report_job_submission(self, job_info: Any, register_job: bool = True) -> None:
            pass  # nothing runs: no job to watch

    profile = request["profile"]
    executor = RenderingExecutor(RenderWorkflow(executor_settings(ExecutorSettings, profile, launch_path), common_settings, SimpleNamespace(
        remote_execution_settings=RemoteExecutionSettings(container_image=profile["container-image"]),
        storage_settings=StorageSettings(shared_fs_usage=frozenset()),  # the plugin implies no shared filesystem
        deployment_settings=DeploymentSettings(), execution_settings=ExecutionSettings(), group_settings=GroupSettings())),
        logging.getLogger("portaflow.render.snakemake-kubernetes"))
    for job in request["jobs"]:
        executor.run_job(SimpleNamespace(rule_name=job["rule"], jobid=job["jobid"], attempt=1, is_containerized=False,
                                         resources={"_cores": job["cores"], "_nodes": 1, **job["resources"]}))
    return recorded


def executor_settings(settings_class: type, profile: dict[str, Any], launch_path: str) -> Any:
    """The plugin's settings from the profile's `portaflow-kubernetes-*` keys, parsed as Snakemake's CLI parses them."""
    import dataclasses

    values: dict[str, Any] = {"launch": launch_path}
    for f in dataclasses.fields(settings_class):
        key = "portaflow-kubernetes-" + f.name.replace("_", "-")
        if key in profile and f.name != "launch":
            parse = f.metadata.get("parse_func")
            values[f.name] = parse(profile[key]) if parse else profile[key]
    return settings_class(**values)


class RenderWorkflow(WorkflowExecutorInterface):
    """What an executor may read of Snakemake's workflow (the plugin interface), for rendering: no DAG, no scheduler.

    Runs in the capture's scratch directory (the plugin keeps pod logs under `persistence.aux_path`)."""

    def __init__(self, executor_settings: Any, common_settings: Any, settings: SimpleNamespace) -> None:
        self.executor_settings = executor_settings
        self._plugin = SimpleNamespace(common_settings=common_settings)
        self._settings = settings
        self.dag = None

    spawned_job_args_factory = property(lambda self: SimpleNamespace(envvars=dict))
    execution_settings = property(lambda self: self._settings.execution_settings)
    remote_execution_settings = property(lambda self: self._settings.remote_execution_settings)
    storage_settings = property(lambda self: self._settings.storage_settings)
    deployment_settings = property(lambda self: self._settings.deployment_settings)
    group_settings = property(lambda self: self._settings.group_settings)
    executor_plugin = property(lambda self: self._plugin)
    resource_scopes = property(lambda self: None)
    main_snakefile = property(lambda self: "Snakefile")
    persistence = property(lambda self: SimpleNamespace(aux_path=Path(".snakemake", "auxiliary").absolute()))
    workdir_init = property(lambda self: os.getcwd())
    scheduler = property(lambda self: None)


def main(argv: list[str]) -> None:
    request = json.loads(Path(argv[0]).read_text())
    recorded: dict[str, Any] = {}
    if request.get("parsl"):
        recorded["parsl"] = parsl_providers(request["parsl"])
    if request.get("snakemake"):
        recorded["snakemake"] = snakemake_jobs(request["snakemake"], request["launch"])
    Path(request["out"]).write_text(json.dumps(recorded))


if __name__ == "__main__":
    main(sys.argv[1:])
