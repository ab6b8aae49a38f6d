"""Kubernetes: a task's request as pod resources, node selection and the profile's pod settings.

The engines build the pods themselves (Parsl's KubernetesProvider creates Pods, Snakemake's kubernetes
plugin creates Jobs), each with fewer settings than a site needs. `complete` adds what they have no
parameter for (node selectors and tolerations of the node pool, all pull secrets, pull policy, labels
that mark the run, deadline, TTL and backoff limit), and `check_manifest` then applies the API server's
rules that the OpenAPI schema does not hold, at the one call that would reach the server: a manifest
that would be refused is refused here, before anything is submitted. Every object is an official
`kubernetes.client` model; `manifest` serialises it as the client would send it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.errors import InputError, Problem, SpecError
from portaflow.plan.model import Task, TaskResources
from portaflow.schedulers.base import JobUsage, Scheduler, SiteFinding
from portaflow.schedulers.kubernetes import dask as kube_dask, parsl as kube_parsl, snakemake as kube_snakemake
from portaflow.schedulers.kubernetes.manifests import (
    KUBERNETES_VERSION,
    MANAGED_BY,
    RUN_LABEL,
    STANDARD_RESOURCES,
    TASK_LABEL,
    ManifestError,
    check_manifest,
    ignore_missing,
    image_reference,
    label_problems,
    label_safe,
    load_config,
    manifest,
    parse_quantity,
    pod_spec_problems,
    raise_if_invalid,
    run_selector,
    schema_problems,
    write_manifests,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

__all__ = [
    "KubernetesScheduler",
    "ManifestError",
    "manifest",
    "parse_quantity",
    "image_reference",
    "load_config",
    "check_manifest",
    "pod_spec_problems",
    "label_problems",
    "raise_if_invalid",
    "schema_problems",
    "write_manifests",
    "label_safe",
    "run_selector",
    "ignore_missing",
    "KUBERNETES_VERSION",
    "MANAGED_BY",
    "RUN_LABEL",
    "TASK_LABEL",
    "STANDARD_RESOURCES",
]


class KubernetesScheduler(Scheduler):
    name = "kubernetes"
    snakemake_executor = kube_snakemake.PLUGIN
    snakemake_submission = re.compile(r"^Get status with: kubectl describe job (?P<id>snakejob-[0-9a-f-]+)")
    """snakemake-executor-plugin-kubernetes 0.5.1: "Get status with: kubectl describe job snakejob-<uuid>" (names no
    Snakemake job)."""

    # -- a request in Kubernetes terms ---------------------------------------------------------
    # -- engines (schedulers/kubernetes/parsl.py, snakemake.py, dask.py) ----------------------------
    def parsl_provider(self, ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> Any:
        return kube_parsl.kubernetes_provider(ctx, label, tasks, offline=offline)

    def parsl_blocks_hold_one_image(self) -> bool:
        """A block is a pod, which runs one image."""
        return True

    def render_parsl_blocks(self, ctx: RunContext, groups: dict[str, list[Task]], out_dir: Path) -> list[Path]:
        return kube_parsl.render_kubernetes_pods(ctx, groups, out_dir / "pods")

    def snakemake_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        return kube_snakemake.rule_resources(ctx, task)

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        return kube_snakemake.executor_profile(ctx)

    def snakemake_run_profile(self, ctx: RunContext, profile: dict[str, Any]) -> dict[str, Any]:
        """The profile names the run's launch file, from which portaflow's plugin completes each Job."""
        return kube_snakemake.run_profile(ctx, profile)

    def render_snakemake_submissions(self, ctx: RunContext, out_dir: Path, profile: dict[str, Any], command: Any,
                                     env: dict[str, str], capture: bool = True) -> list[Path]:
        return [kube_snakemake.render_kubernetes_jobs(ctx, out_dir / "jobs", profile)]

    def jobs_see_driver_filesystem(self) -> bool:
        """Files go through the object store; Snakemake's own events say what finished."""
        return False

    def remote_job_script(self, ctx: RunContext, task: Task) -> str:
        return kube_snakemake.job_script(ctx, task)

    def uses_object_store(self) -> bool:
        return True

    def dask_worker_settings(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """Workers as pods built from the profile (or a DaskCluster where the site runs the operator)."""
        return {"cluster": "portaflow.runtime.dask_pods:kubernetes_cluster", **kube_dask.worker_settings(self, task, ctx.run_id)}

    def render_dask_clusters(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        return kube_dask.render_dask_clusters(ctx, out_dir)

    def quantities(self, request: TaskResources, partition: str | None = None) -> dict[str, str]:
        """Requests (= limits: a step gets what the plan checked, no more, no less) as quantities."""
        out = {"cpu": str(request.cores), "memory": f"{request.memory_mib}Mi"}
        if request.gpus:
            out[self.gpu_resource(partition)] = str(request.gpus)
        return out

    def gpu_resource(self, partition: str | None) -> str:
        """The extended resource GPUs are asked for as: the partition's node pool's, else the site's (one rule for both engines)."""
        k8s = self.site.kubernetes
        pool = k8s.node_pools.get(partition) if partition else None
        return (pool.gpu_resource if pool and pool.gpu_resource else None) or k8s.gpu_resource

    def node_affinity(self, partition: str) -> Any:
        """The pool's `node_affinity` as a required node affinity (each label: operator In, its values), or None."""
        from kubernetes import client

        pool = self.site.kubernetes.node_pools.get(partition)
        if not pool or not pool.node_affinity:
            return None
        expressions = [client.V1NodeSelectorRequirement(key=key, operator="In", values=list(values))
                       for key, values in pool.node_affinity.items()]
        return client.V1Affinity(node_affinity=client.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=client.V1NodeSelector(
                node_selector_terms=[client.V1NodeSelectorTerm(match_expressions=expressions)])))

    def security_context(self) -> Any:
        """The site's pod securityContext, or None."""
        from kubernetes import client

        sc = self.site.kubernetes.security_context
        if sc is None:
            return None
        return client.V1PodSecurityContext(run_as_user=sc.run_as_user, run_as_group=sc.run_as_group, fs_group=sc.fs_group,
                                           run_as_non_root=sc.run_as_non_root)

    def resources(self, request: TaskResources, partition: str | None = None) -> Any:
        from kubernetes import client

        quantities = self.quantities(request, partition)
        return client.V1ResourceRequirements(requests=dict(quantities), limits=dict(quantities))

    def node_selector(self, partition: str, gpu_model: str | None) -> dict[str, str]:
        """The node pool's labels, plus the GPU model's when a step names one."""
        k8s = self.site.kubernetes
        pool = k8s.node_pools.get(partition)
        selector = dict(pool.node_selector) if pool else {}
        if gpu_model:
            if gpu_model not in k8s.gpu_model_selectors:
                raise InputError(f"site {self.site.name}: GPU model {gpu_model!r} has no node selector "
                                 f"(kubernetes.gpu_model_selectors.{gpu_model}: {{LABEL: VALUE}})")
            selector.update(k8s.gpu_model_selectors[gpu_model])
        return selector

    def tolerations(self, partition: str) -> list[Any]:
        from kubernetes import client

        pool = self.site.kubernetes.node_pools.get(partition)
        return [client.V1Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect) for t in (pool.tolerations if pool else [])]

    def labels(self, run_id: str, task_id: str | None = None) -> dict[str, str]:
        out = {**self.site.kubernetes.labels, MANAGED_BY: "portaflow", RUN_LABEL: label_safe(run_id)}
        if task_id:
            out[TASK_LABEL] = label_safe(task_id)
        return out

    def directives(self, request: TaskResources, partition: str) -> list[str]:
        """What `portaflow plan` shows: the pod's resources and where it may run."""
        out = [f"{name}={value}" for name, value in self.quantities(request, partition).items()]
        out += [f"nodeSelector:{k}={v}" for k, v in self.node_selector(partition, request.gpu_model).items()]
        out += [f"toleration:{t.key or '*'}" for t in self.tolerations(partition)]
        return out

    # -- completing what an engine built -------------------------------------------------------
    def complete_pod_spec(self, spec: Any, request: TaskResources, partition: str, run_id: str, walltime_s: int | None) -> None:
        """Add the profile's pod settings an engine has no parameter for (the engine's own values stay)."""
        from kubernetes import client

        k8s = self.site.kubernetes
        spec.node_selector = {**(spec.node_selector or {}), **self.node_selector(partition, request.gpu_model)} or None
        tolerations = list(spec.tolerations or [])
        for toleration in self.tolerations(partition):
            if toleration not in tolerations:
                tolerations.append(toleration)
        spec.tolerations = tolerations or None
        secrets = [s.name for s in spec.image_pull_secrets or []]
        secrets += [s for s in k8s.image_pull_secrets if s not in secrets]
        spec.image_pull_secrets = [client.V1LocalObjectReference(name=s) for s in secrets] or None
        if k8s.service_account:
            spec.service_account_name = k8s.service_account
        affinity = self.node_affinity(partition)
        if affinity is not None and spec.affinity is None:
            spec.affinity = affinity
        security = self.security_context()
        if security is not None and spec.security_context is None:
            spec.security_context = security
        if spec.restart_policy in (None, "Always"):
            spec.restart_policy = "Never"  # a worker that exits must not be restarted behind the engine's back
        if walltime_s and spec.active_deadline_seconds is None:
            spec.active_deadline_seconds = walltime_s + k8s.deadline_grace
        read_only = {v.claim for v in k8s.volume_claims if v.read_only}
        for container in spec.containers:
            container.image_pull_policy = k8s.image_pull_policy
            for mount in container.volume_mounts or []:
                if mount.name in read_only:
                    mount.read_only = True

    def complete(self, body: Any, request: TaskResources, partition: str, run_id: str, walltime_s: int | None, task_id: str | None = None) -> Any:
        """Complete a V1Pod or V1Job in place (labels, pod settings; for Jobs TTL, backoff, deadline)."""
        from kubernetes import client

        k8s = self.site.kubernetes
        labels = self.labels(run_id, task_id)
        is_job = isinstance(body, client.V1Job)
        # The endpoint implies these; set in the body, the manifest says what it is wherever it is read.
        body.api_version = body.api_version or ("batch/v1" if is_job else "v1")
        body.kind = body.kind or ("Job" if is_job else "Pod")
        body.metadata.namespace = body.metadata.namespace or k8s.namespace
        body.metadata.labels = {**(body.metadata.labels or {}), **labels}
        if is_job:
            template = body.spec.template
            template.metadata = template.metadata or client.V1ObjectMeta()
            template.metadata.labels = {**(template.metadata.labels or {}), **labels}
            body.spec.ttl_seconds_after_finished = k8s.ttl_after_finished
            body.spec.backoff_limit = k8s.backoff_limit
            if walltime_s:
                body.spec.active_deadline_seconds = walltime_s + k8s.deadline_grace
            self.complete_pod_spec(template.spec, request, partition, run_id, None)
        else:
            self.complete_pod_spec(body.spec, request, partition, run_id, walltime_s)
        return body

    def worker_pod_spec(self, request: TaskResources, partition: str, image: str, args: list[str], run_id: str,
                        command: list[str] | None = None, env: dict[str, str] | None = None) -> Any:
        """A pod spec for a process portaflow starts itself (a Dask worker), completed like the engines' pods."""
        from kubernetes import client

        container = client.V1Container(
            name="worker", image=image, command=command, args=args, resources=self.resources(request, partition),
            env=[client.V1EnvVar(name=k, value=v) for k, v in env.items()] if env else None,
            volume_mounts=[client.V1VolumeMount(name=v.claim, mount_path=v.mount_path) for v in self.site.kubernetes.volume_claims] or None,
        )
        volumes = [client.V1Volume(name=v.claim, persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name=v.claim))
                   for v in self.site.kubernetes.volume_claims]
        spec = client.V1PodSpec(containers=[container], volumes=volumes or None)
        self.complete_pod_spec(spec, request, partition, run_id, None)
        return spec

    # -- profile checks ------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse what Kubernetes cannot express, with the file, key and what is expected."""
        super().check()
        site, k8s = self.site, self.site.kubernetes
        problems: list[Problem] = []

        def add(path: tuple, message: str, hint: str | None) -> None:
            problems.append(self.loaded.problem(path, message, hint))

        for name, part in site.partitions.items():
            if part.max_nodes > 1:
                add(("partitions", name, "max_nodes"), f"expected 1 on Kubernetes, found {part.max_nodes}", "a pod runs on one node")
            for index, model in enumerate(part.gpu_models):
                if model not in k8s.gpu_model_selectors:
                    add(("partitions", name, "gpu_models", index), f"GPU model {model!r} has no node selector",
                        f"expected kubernetes.gpu_model_selectors.{model}: {{NODE_LABEL: VALUE}}, e.g. nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB")
        for name in k8s.node_pools:
            if name not in site.partitions:
                add(("kubernetes", "node_pools", name), "names no partition", "expected one of: " + ", ".join(site.partitions))
        if site.container.runtime != "none":
            add(("container", "runtime"), f"expected none on Kubernetes, found {site.container.runtime}",
                "the pod is the container: list registry images in container.images")
        if k8s.default_container not in site.container.images:
            add(("kubernetes", "default_container"), f"container {k8s.default_container!r} is not in container.images",
                "expected an image holding portaflow and the engine, e.g. container.images.portaflow: registry.example.org/portaflow:0.1")
        if site.storage.shared_filesystem and not k8s.volume_claims:
            add(("storage", "shared_filesystem"), "a shared filesystem on Kubernetes needs a volume claim",
                "expected kubernetes.volume_claims: [{claim: NAME, mount_path: /data}], or storage.shared_filesystem: false with "
                "kubernetes.object_store")
        if not site.storage.shared_filesystem and not k8s.object_store:
            add(("storage", "shared_filesystem"), "no shared filesystem and no object store: step outputs could not reach the next step",
                "expected kubernetes.object_store: {provider: s3, prefix: s3://BUCKET/PATH}")
        problems += self.image_variable_problems("Kubernetes (a pod's image)", "write the registry reference in full, e.g. "
                                                 "registry.example.org/project/image:1.2")
        for key in ("qos", "reservation", "constraint"):
            if getattr(site.slurm, key):
                add(("slurm", key), f"slurm.{key} is a batch-scheduler setting with no Kubernetes equivalent", "use kubernetes.node_pools "
                                                                                                               "for placement")
        if problems:
            raise SpecError(problems)

    def check_workdir(self, workdir: str) -> None:
        """Engines that share files through the filesystem need the work directory on a mounted claim."""
        mounts = [v.mount_path.rstrip("/") for v in self.site.kubernetes.volume_claims if not v.read_only]
        if not any(workdir == m or workdir.startswith(m + "/") for m in mounts):
            raise InputError(f"site {self.site.name}: work directory {workdir} is not on a volume claim the pods mount "
                             f"(writable kubernetes.volume_claims mount paths: {', '.join(mounts) or 'none'}); "
                             "choose a work directory under one (--workdir or storage.work_dir)")

    # -- talking to the cluster ----------------------------------------------------------------
    def compare_profile(self, partitions: list[str]) -> list[SiteFinding]:
        """The namespace, service account, volume claims and node labels the profile names, read from the API server
        (schedulers/kubernetes/compare.py)."""
        from portaflow.schedulers.kubernetes.compare import compare_profile

        return compare_profile(self.site, partitions)

    def connection_problems(self) -> list[str]:
        """A Kubernetes configuration (kubeconfig or in-cluster) that both engines will use."""
        try:
            load_config()
        except InputError as exc:
            return [f"site {self.site.name}: {exc}"]
        except ImportError:
            return [f"site {self.site.name}: the kubernetes client is not installed (pip install 'portaflow[kubernetes]')"]
        return []

    def check_rendered(self, files: list[Path]) -> list[str]:
        """Each rendered manifest (`*.yaml` streams) against the OpenAPI schema in strict mode and the
        server-side rules the schema misses: what render already enforced, read back from the files."""
        import yaml

        DASK_KINDS, dask_resource_problems = kube_dask.DASK_KINDS, kube_dask.dask_resource_problems

        problems = []
        for path in (f for f in files if f.suffix == ".yaml" and f.name != "config.yaml"):
            for body in yaml.safe_load_all(path.read_text()):
                if isinstance(body, dict) and body.get("kind") in DASK_KINDS:  # the operator's resources: not in the core schema
                    problems += [f"{path.name}: {p}" for p in dask_resource_problems(body)]
                elif isinstance(body, dict) and "kind" in body:
                    problems += [f"{path.name}: {p}" for p in check_manifest(body) + schema_problems(body)]
        return problems

    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """Delete the run's Jobs and Pods: those carrying its label, and jobs recorded by name.

        Why both: Parsl's pods and portaflow-completed jobs carry the run label; a job the engine
        created before it could be completed is found by the name the engine logged.
        """
        apis = self.apis()
        if apis is None:
            return []
        batch, core = apis
        namespace = self.site.kubernetes.namespace
        selector = run_selector(run_id)
        # One deletecollection per kind deletes everything carrying the run's label; the list first names them.
        deleted = [job.metadata.name for job in batch.list_namespaced_job(namespace, label_selector=selector).items]
        batch.delete_collection_namespaced_job(namespace, label_selector=selector, propagation_policy="Background")
        for name in known_jobs:  # created before the label could be added: by the name the engine logged
            if name not in deleted:
                ignore_missing(lambda n=name: batch.delete_namespaced_job(n, namespace, propagation_policy="Background"))
                deleted.append(name)
        if self.site.kubernetes.dask_operator:  # first: the operator would replace the worker pods deleted below
            deleted += self._delete_dask_clusters(namespace, selector)
        pods = [pod.metadata.name for pod in core.list_namespaced_pod(namespace, label_selector=selector).items]
        if pods:
            core.delete_collection_namespaced_pod(namespace, label_selector=selector)
        return deleted + [name for name in pods if name not in deleted]

    def jobs_of_run(self, run_id: str) -> list[str]:
        """The run's Jobs and Pods the API server still lists (`run_selector`), whatever their phase: a pod of a
        killed run that is ending can still write. Nothing where no cluster is configured."""
        apis = self.apis()
        if apis is None:
            return []
        batch, core = apis
        namespace, selector = self.site.kubernetes.namespace, run_selector(run_id)
        jobs = [job.metadata.name for job in batch.list_namespaced_job(namespace, label_selector=selector).items]
        pods = [pod.metadata.name for pod in core.list_namespaced_pod(namespace, label_selector=selector).items]
        return jobs + [name for name in pods if name not in jobs]

    def _delete_dask_clusters(self, namespace: str, selector: str) -> list[str]:
        """Delete the run's DaskClusters (the operator then removes their scheduler and workers)."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        custom = client.CustomObjectsApi()
        try:
            found = custom.list_namespaced_custom_object("kubernetes.dask.org", "v1", namespace, "daskclusters", label_selector=selector)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return []  # the operator's resource is not installed: no DaskCluster exists, and the pods still go below
        names = [item["metadata"]["name"] for item in found.get("items", [])]
        for name in names:
            ignore_missing(lambda n=name: custom.delete_namespaced_custom_object("kubernetes.dask.org", "v1", namespace, "daskclusters", n))
        return names

    def accounting(self, job_ids: list[str]) -> dict[str, JobUsage]:
        """The pods of the run's jobs (a Snakemake Job's pods by their `job-name` label, a Parsl pod by its name) as the
        API server describes them (`parse_pod_accounting`): when each was created, started and ended, and the cores and
        memory it asked for. Kubernetes keeps no CPU time or peak memory of a finished pod (metrics-server holds only
        the current usage of running ones), so those stay "not measured". Nothing where no cluster is configured, or
        (logged) where the API server refuses."""
        from kubernetes.client.rest import ApiException

        apis = self.apis()
        ids = sorted({j for j in job_ids if j})
        if apis is None or not ids:
            return {}
        core = apis[1]
        namespace = self.site.kubernetes.namespace
        try:
            labelled = [j for j in ids if LABEL_VALUE.fullmatch(j)]
            pods = core.list_namespaced_pod(namespace, label_selector=f"job-name in ({','.join(labelled)})").items if labelled else []
            named = {pod.metadata.name for pod in pods}
            for name in ids:
                if name not in named and not any((pod.metadata.labels or {}).get("job-name") == name for pod in pods):
                    try:
                        pods.append(core.read_namespaced_pod(name, namespace))
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
        except ApiException as exc:
            log.warning("the Kubernetes API refused to list the run's pods, so the report has no accounting: %s", exc.reason)
            return {}
        return parse_pod_accounting([core.api_client.sanitize_for_serialization(pod) for pod in pods], ids)

    def apis(self) -> tuple[Any, Any] | None:
        """BatchV1Api and CoreV1Api on the configured cluster, or None where no configuration exists."""
        from kubernetes import client

        try:
            load_config()
        except InputError:
            return None
        return client.BatchV1Api(), client.CoreV1Api()


LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
"""A valid label value (a Job's name as its pods' `job-name` label holds it); other ids are looked up as pod names."""
POD_STATES = {"Succeeded": "COMPLETED", "Failed": "FAILED", "Running": "RUNNING", "Pending": "PENDING", "Unknown": "UNKNOWN"}


def parse_pod_accounting(pods: list[dict[str, Any]], job_ids: list[str]) -> dict[str, JobUsage]:
    """Pods as the API server returns them (`kubectl get pod -o json`: metadata.creationTimestamp, spec.containers[]
    .resources.requests, status.phase, status.containerStatuses[].state.terminated.startedAt/finishedAt, RFC 3339 in
    UTC) -> one JobUsage per id: a Job's pods by their `job-name` label (its last pod: a Job retries in new pods), or
    the pod of that name. Times become the local time without an offset, as the report reads sacct's. Requests are
    Kubernetes quantities (`500m`, `2`, `1Gi`)."""
    import datetime as dt
    import math

    def local(stamp: Any) -> dt.datetime | None:
        if not stamp:
            return None
        try:
            return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone().replace(tzinfo=None)
        except ValueError:
            return None

    def iso(when: dt.datetime | None) -> str | None:
        return when.isoformat(timespec="seconds") if when else None

    out = {}
    for job in dict.fromkeys(job_ids):
        mine = [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get("job-name") == job
                or (p.get("metadata") or {}).get("name") == job]
        if not mine:
            continue
        pod = max(mine, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
        status = pod.get("status") or {}
        ran = [(cs.get("state") or {}).get("terminated") or (cs.get("state") or {}).get("running") or {}
               for cs in status.get("containerStatuses") or []]
        starts = [t for t in (local(r.get("startedAt")) for r in ran) if t]
        ends = [t for t in (local(r.get("finishedAt")) for r in ran) if t]
        started, ended = (min(starts) if starts else None), (max(ends) if ends and len(ends) == len(ran) else None)
        cpu = mem = 0.0
        for container in (pod.get("spec") or {}).get("containers") or []:
            requests = ((container.get("resources") or {}).get("requests")) or {}
            cpu += float(parse_quantity(requests["cpu"])) if "cpu" in requests else 0.0
            mem += float(parse_quantity(requests["memory"])) / 2 ** 20 if "memory" in requests else 0.0
        out[job] = JobUsage(job_id=job, state=POD_STATES.get(str(status.get("phase")), status.get("phase")),
                            submitted=iso(local((pod.get("metadata") or {}).get("creationTimestamp"))), started=iso(started),
                            ended=iso(ended), elapsed_s=(ended - started).total_seconds() if started and ended else None,
                            cores=math.ceil(cpu) if cpu else None, memory_mib=mem or None)
    return out
