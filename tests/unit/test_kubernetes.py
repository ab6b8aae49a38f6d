"""Kubernetes sites: manifests captured where each engine hands off, checked offline.

No API server runs here, so every rendered manifest is validated with kubernetes-validate (strict:
unknown fields are errors) against the pinned schema, plus portaflow's own checks for the server-side
rules the schema does not hold. Golden files: PORTAFLOW_UPDATE_GOLDEN=1 regenerates them.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")
from kubernetes import client  # noqa: E402

from portaflow.plan.model import TaskResources  # noqa: E402
from portaflow.schedulers import scheduler_for  # noqa: E402
from portaflow.schedulers.kubernetes import KUBERNETES_VERSION, RUN_LABEL, ManifestError, check_manifest, manifest, parse_quantity, raise_if_invalid  # noqa: E402
from portaflow.spec.loading import load_site  # noqa: E402

from test_golden_render import GOLDEN, normalise  # noqa: E402
from testlib import ROOT, WORKFLOWS, run_portaflow  # noqa: E402

# The module-scoped fixtures render or run once per test process: one xdist worker takes the whole module.
pytestmark = pytest.mark.xdist_group("kubernetes-renders")

RESOURCES = ROOT / "tests" / "data" / "workflows" / "resources.yaml"
WORDFREQ = WORKFLOWS / "examples" / "wordfreq.yaml"
PVC_WORKDIR = "/data/portaflow/golden"
CASES = [
    (RESOURCES, "example-egi-cloud-k8s", "parsl"),
    (WORDFREQ, "example-egi-cloud-k8s", "parsl"),
    (RESOURCES, "example-cloud-gpu-k8s", "snakemake"),
    (WORDFREQ, "example-cloud-gpu-k8s", "snakemake"),
]


def render(tmp_path: Path, workflow: Path, site: str, engine: str, *extra: str):
    out = tmp_path / "render"
    result = run_portaflow("render", str(workflow), "--site", site, "--engine", engine, "-o", str(out), "--workdir", PVC_WORKDIR,
                           *(["--param", "shards=2"] if workflow.stem == "wordfreq" else []), *extra, cwd=ROOT)
    return result, out


def manifests(out: Path) -> list[dict]:
    docs = []
    for path in sorted(out.rglob("*.yaml")):
        if path.parent.name in ("pods", "jobs"):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize("workflow, site, engine", CASES, ids=lambda v: Path(str(v)).stem)
def test_rendered_manifests_match_golden_and_validate(tmp_path, workflow, site, engine):
    result, out = render(tmp_path, workflow, site, engine)
    assert result.returncode == 0, result.stderr
    docs = manifests(out)
    assert docs, "no manifest rendered"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on any schema error
        assert check_manifest(doc) == []
        assert doc["metadata"]["labels"][RUN_LABEL] == "render"
    golden_dir = GOLDEN / f"{workflow.stem}--{site}--{engine}"
    rendered = {p.relative_to(out): normalise(p.read_text(), out) for p in sorted(out.rglob("*")) if p.is_file()}
    if os.environ.get("PORTAFLOW_UPDATE_GOLDEN") == "1":
        for rel, text in rendered.items():
            (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / rel).write_text(text)
    expected = {p.relative_to(golden_dir): p.read_text() for p in sorted(golden_dir.rglob("*")) if p.is_file()}
    assert sorted(rendered) == sorted(expected)
    for rel, text in rendered.items():
        assert text == expected[rel], f"{rel} differs from {golden_dir / rel}"


def test_golden_manifests_themselves_validate():
    """The reviewed files, as kubectl would read them, pass the strict schema too."""
    files = [p for p in GOLDEN.glob("*--example-*-k8s--*/*/*.yaml") if p.parent.name in ("pods", "jobs")]
    assert len(files) >= 4
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_parsl_pod_carries_the_profile(tmp_path):
    """KubernetesProvider's own pod, completed: GPU pool selection, limits = requests, secrets, volume, deadline."""
    result, out = render(tmp_path, RESOURCES, "example-egi-cloud-k8s", "parsl")
    assert result.returncode == 0, result.stderr
    gpu = next(d for d in manifests(out) if "gpu" in d["metadata"]["name"])
    spec = gpu["spec"]
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == container["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"]["memory"] == "6144Mi"
    assert container["image"] == "registry.egi.example/portaflow/portaflow:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert spec["nodeSelector"] == {"egi.eu/pool": "gpu"}
    assert spec["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert spec["imagePullSecrets"] == [{"name": "egi-registry"}]
    assert spec["serviceAccountName"] == "portaflow-runner"
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 25 * 60 + 60
    assert spec["volumes"] == [{"name": "portaflow-data", "persistentVolumeClaim": {"claimName": "portaflow-data"}}]
    assert gpu["metadata"]["namespace"] == "portaflow"


def test_snakemake_jobs_carry_the_profile(tmp_path):
    result, out = render(tmp_path, RESOURCES, "example-cloud-gpu-k8s", "snakemake")
    assert result.returncode == 0, result.stderr
    jobs = {d["metadata"]["labels"]["portaflow/task"]: d for d in manifests(out)}
    train = jobs["train"]
    assert train["spec"]["ttlSecondsAfterFinished"] == 1800 and train["spec"]["backoffLimit"] == 0
    assert train["spec"]["activeDeadlineSeconds"] == 25 * 60 + 60
    pod = train["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-nodepool": "gpu-a100"}
    # the plugin's own GPU toleration and the profile's are the same one: listed once
    assert pod["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}]
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits == pod["containers"][0]["resources"]["requests"]
    assert parse_quantity(limits["memory"]) >= 6144 * 2**20  # never less than the MiB the plan checked
    profile = yaml.safe_load((out / "profile" / "config.yaml").read_text())
    assert profile["executor"] == "portaflow-kubernetes"
    assert profile["default-storage-provider"] == "s3"
    assert profile["default-storage-prefix"] == "s3://example-portaflow-runs/staging/resources"


@pytest.mark.parametrize("site, engine, words", [
    ("example-egi-cloud-k8s", "snakemake", "needs a remote default storage"),
    ("example-cloud-gpu-k8s", "parsl", "is not on a volume claim"),
])
def test_unsupported_combinations_exit_2_without_traceback(tmp_path, site, engine, words):
    result, out = render(tmp_path, WORDFREQ, site, engine)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_gpu_model_without_node_selector_is_refused_with_file_and_key(tmp_path):
    profile = tmp_path / "bad-k8s.yaml"
    profile.write_text(
        f"extends: {ROOT / 'site_profiles' / 'example-egi-cloud-k8s.yaml'}\nname: bad-k8s\npartitions:\n"
        "  gpu: {max_walltime: 1d, cores_per_node: 7, memory_per_node: 28GiB, gpus_per_node: 2, gpu_models: [v100, h100]}\n")
    result = run_portaflow("plan", str(WORDFREQ), "--site", str(profile), cwd=ROOT)
    assert result.returncode == 2
    assert f"{profile}:4:" in result.stderr
    assert "gpu_models" in result.stderr and "'h100' has no node selector" in result.stderr
    assert "kubernetes.gpu_model_selectors.h100" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("key, value, words", [
    ("kubernetes.namespace", "Bad_Namespace", "DNS-1123 label"),
    ("kubernetes.image_pull_secrets", "[UPPER]", "DNS-1123 name"),
    ("partitions.cpu.max_nodes", "4", "expected 1 on Kubernetes"),
])
def test_bad_kubernetes_values_are_refused(key, value, words):
    result = run_portaflow("plan", str(WORDFREQ), "--site", "example-egi-cloud-k8s", "--site-set", f"{key}={value}", cwd=ROOT)
    assert result.returncode == 2, result.stdout
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def _job(**container_changes) -> dict:
    container = client.V1Container(name="step", image="registry.example.org/x:1", resources=client.V1ResourceRequirements(
        requests={"cpu": "2", "memory": "4Gi"}, limits={"cpu": "2", "memory": "4Gi"}))
    for key, value in container_changes.items():
        setattr(container, key, value)
    pod = client.V1PodSpec(containers=[container], restart_policy="Never")
    job = client.V1Job(api_version="batch/v1", kind="Job", metadata=client.V1ObjectMeta(name="step-1", namespace="ns"),
                       spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=pod)))
    return manifest(job)


def test_own_checks_accept_a_good_job():
    body = _job()
    assert check_manifest(body) == []
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("change, words", [
    (lambda b: b["metadata"].update(name="Step_1"), "metadata.name"),
    (lambda b: b["metadata"].update(name="a" * 64), "metadata.name"),
    (lambda b: b["spec"]["template"]["spec"].update(restartPolicy="Always"), "restartPolicy: expected Never or OnFailure"),
    (lambda b: b["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update(memory="4 GB"), "not a Kubernetes quantity"),
    (lambda b: b["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(cpu="1500m"), "limit 1500m is below its request 2"),
    (lambda b: b["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update({"nvidia.com/gpu": "1"}), "needs a limit equal"),
    (lambda b: b["metadata"].update(labels={"portaflow/run-id": "x" * 64}), "metadata.labels"),
    (lambda b: b["spec"]["template"]["spec"]["containers"][0].update(volumeMounts=[{"name": "data", "mountPath": "/d"}]), "names no volume"),
])
def test_own_checks_catch_what_the_server_would_refuse(change, words):
    body = _job()
    change(body)
    problems = check_manifest(body)
    assert any(words in p for p in problems), problems
    with pytest.raises(ManifestError):
        raise_if_invalid(body)


def test_schema_strict_mode_catches_unknown_fields():
    body = _job()
    body["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(ManifestError, match="strict"):
        raise_if_invalid(body)


def test_parsl_pod_is_checked_before_the_api_call():
    """The completing client refuses a bad pod and never calls the API behind it."""
    from portaflow.schedulers.kubernetes.parsl import CompletingCoreApi

    calls = []
    api = type("Api", (), {"create_namespaced_pod": lambda self, namespace, body: calls.append(body)})()
    scheduler = scheduler_for("kubernetes")(load_site("example-egi-cloud-k8s"))
    request = TaskResources(cores=2, memory_mib=4096, walltime_s=600)
    completing = CompletingCoreApi(api, scheduler, request, "cpu", "run-1", 600)
    good = client.V1Pod(metadata=client.V1ObjectMeta(name="parsl.block.1"), spec=client.V1PodSpec(containers=[
        client.V1Container(name="w", image="registry.example.org/x:1", resources=scheduler.resources(request))]))
    completing.create_namespaced_pod(namespace="portaflow", body=good)
    assert len(calls) == 1 and calls[0].spec.node_selector == {"egi.eu/pool": "cpu"}
    bad = client.V1Pod(metadata=client.V1ObjectMeta(name="parsl.block.2"), spec=client.V1PodSpec(containers=[
        client.V1Container(name="w", image="registry.example.org/x:1", resources=client.V1ResourceRequirements(
            requests={"cpu": "4"}, limits={"cpu": "2"}))]))
    with pytest.raises(ManifestError, match="below its request"):
        completing.create_namespaced_pod(namespace="portaflow", body=bad)
    assert len(calls) == 1


BOTH = ROOT / "tests" / "data" / "sites" / "k8s-both-engines.yaml"
"""The one Kubernetes profile both engines run on: an object store (Snakemake's plugin) and a volume claim (Parsl)."""


@pytest.fixture(scope="module")
def rendered_for_both(tmp_path_factory):
    out = {}
    for workflow in (RESOURCES, WORDFREQ):
        for engine in ("parsl", "snakemake"):
            result, path = render(tmp_path_factory.mktemp(f"{workflow.stem}-{engine}"), workflow, str(BOTH), engine)
            assert result.returncode == 0, result.stderr
            out[workflow.stem, engine] = path
    return out


def test_parsl_and_snakemake_ask_kubernetes_for_the_same_pods(rendered_for_both):
    """For every task, the pod Parsl's KubernetesProvider creates for the task's block and the pod template of the Job
    Snakemake's plugin creates for it ask for the same resources (requests and limits) on the same nodes (node
    selector, tolerations), from the same image with the same pull settings and account. Memory: the plugin counts
    in MB, so its request is the plan's MiB rounded up to a whole MB (never less, under 1 MB more). The deadline is
    the task's walltime for the Job, its block's (`block_sizing`) for the pod."""
    from portaflow.engines.parsl_engine import resource_classes
    from portaflow.plan import make_plan
    from portaflow.schedulers import adapter_for
    from portaflow.schedulers.context import RunContext
    from portaflow.schedulers.parsl_blocks import block_sizing
    from portaflow.spec.loading import load_workflow

    loaded = load_site(str(BOTH))
    site = loaded.site
    grace = site.kubernetes.deadline_grace
    for workflow in (RESOURCES, WORDFREQ):
        plan = make_plan(load_workflow(workflow).workflow, site, {"shards": 2} if workflow == WORDFREQ else {})
        ctx = RunContext(plan, loaded, Path("/work"), Path("/work/run"), plan.tasks, adapter_for(loaded))
        jobs = {d["metadata"]["labels"]["portaflow/task"]: d for d in manifests(rendered_for_both[workflow.stem, "snakemake"])}
        assert sorted(jobs) == sorted(t.id for t in plan.tasks)
        for label, tasks in resource_classes(plan.tasks, by_container=True).items():
            [pod] = [d for d in yaml.safe_load_all((rendered_for_both[workflow.stem, "parsl"] / "pods" / f"{label}.yaml").read_text()) if d]
            parsl = pod["spec"]
            for task in tasks:
                snakemake = jobs[task.id]["spec"]["template"]["spec"]
                where = f"{workflow.stem}, task {task.id}"
                for key in ("nodeSelector", "imagePullSecrets", "serviceAccountName", "restartPolicy"):
                    assert parsl.get(key) == snakemake.get(key), f"{where}: {key}"
                key = lambda t: sorted(t.items())  # noqa: E731
                assert sorted(parsl.get("tolerations") or [], key=key) == sorted(snakemake.get("tolerations") or [], key=key), where
                [p], [s] = parsl["containers"], snakemake["containers"]
                assert (p["image"], p["imagePullPolicy"]) == (s["image"], s["imagePullPolicy"]), where
                for kind in ("requests", "limits"):
                    ours, theirs = p["resources"][kind], s["resources"][kind]
                    assert sorted(ours) == sorted(theirs), f"{where}: {kind}"
                    for name in ours:
                        q_parsl, q_snakemake = parse_quantity(ours[name]), parse_quantity(theirs[name])
                        if name == "memory":
                            assert 0 <= q_snakemake - q_parsl < 10**6, f"{where}: {kind}.memory {ours[name]} vs {theirs[name]}"
                        else:
                            assert q_parsl == q_snakemake, f"{where}: {kind}.{name} {ours[name]} vs {theirs[name]}"
                assert parse_quantity(p["resources"]["requests"]["cpu"]) == task.resources.cores  # and it compares something
                assert jobs[task.id]["spec"]["activeDeadlineSeconds"] == task.resources.walltime_s + grace
                # the block's deadline covers the tasks it may run in sequence (parsl_blocks.block_sizing)
                assert parsl["activeDeadlineSeconds"] == block_sizing(ctx, tasks).walltime_s + grace
                assert block_sizing(ctx, tasks).walltime_s >= max(t.resources.walltime_s for t in tasks)


def test_portaflow_plugin_completes_the_jobs_the_upstream_plugin_creates():
    """portaflow's executor plugin hands each Job to the JobCompleter before its BatchV1Api creates it; a Job whose step
    cannot be told is refused, nothing sent."""
    from portaflow.schedulers.kubernetes.snakemake_jobs import JobCompleter
    from snakemake_executor_plugin_portaflow_kubernetes import CompletingBatchApi

    sent = []

    class Batch:
        def create_namespaced_job(self, namespace, body):
            sent.append(body)

        def read_namespaced_job_status(self, name, namespace):
            return "status of " + name

    scheduler = scheduler_for("kubernetes")(load_site("example-cloud-gpu-k8s"))
    specs = {"train": {"request": TaskResources(cores=4, memory_mib=6144, walltime_s=1500, gpus=2).__dict__,
                       "partition": "gpu-a100", "walltime_s": 1500}}
    batch = CompletingBatchApi(Batch(), JobCompleter(scheduler, specs, "run-7"))
    container = client.V1Container(name="snakemake", image="x/y:1", args=["-c", "snakemake --target-jobs 'train:' --other"])
    job = client.V1Job(metadata=client.V1ObjectMeta(name="snakejob-1", labels={"app": "snakemake"}), spec=client.V1JobSpec(
        template=client.V1PodTemplateSpec(spec=client.V1PodSpec(containers=[container], restart_policy="Never"))))
    batch.create_namespaced_job("research-pipelines", job)
    body = manifest(sent[0])
    assert body["metadata"]["labels"][RUN_LABEL] == "run-7"
    assert body["spec"]["activeDeadlineSeconds"] == 1560
    assert body["spec"]["template"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-nodepool": "gpu-a100"}
    assert batch.read_namespaced_job_status("snakejob-1", "research-pipelines") == "status of snakejob-1"
    container.args = ["-c", "snakemake --no-target"]
    with pytest.raises(RuntimeError, match="cannot tell which step"):
        batch.create_namespaced_job("research-pipelines", job)
    assert len(sent) == 1


def test_portaflow_plugins_are_the_upstream_ones_without_per_job_pip_install():
    """Snakemake finds portaflow's executor plugins by name; each is the upstream plugin's Executor and settings,
    subclassed, with common settings of its own (no auto-deployment of storage plugins); the upstream module is left
    as it is."""
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    registry = ExecutorPluginRegistry()
    for name in ("kubernetes", "htcondor"):
        upstream = importlib.import_module(f"snakemake_executor_plugin_{name}")
        module_name = f"snakemake_executor_plugin_portaflow_{name}"
        ours = importlib.import_module(module_name)
        registry.validate_plugin(module_name, ours)  # what Snakemake checks of a plugin module it finds
        assert registry.load_plugin(f"portaflow-{name}", ours).cli_prefix == f"portaflow-{name}"
        assert issubclass(ours.Executor, upstream.Executor) and ours.Executor is not upstream.Executor
        assert issubclass(ours.ExecutorSettings, upstream.ExecutorSettings)
        assert ours.common_settings.auto_deploy_default_storage_provider is False
        assert upstream.common_settings.auto_deploy_default_storage_provider is True
        assert dataclasses.replace(ours.common_settings, auto_deploy_default_storage_provider=True) == upstream.common_settings


@pytest.mark.parametrize("name", ["kubernetes", "htcondor"])
def test_portaflow_plugin_imports_where_the_upstream_plugin_is_missing(monkeypatch, name):
    """Snakemake imports every plugin on its path, so an install without the upstream plugin (portaflow's base
    dependencies) must still import portaflow's; using it then says what to install."""
    import importlib.util

    from snakemake_interface_common.exceptions import WorkflowError
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    registry = ExecutorPluginRegistry()  # collects the installed plugins (the upstream one too) before it is hidden
    monkeypatch.setitem(sys.modules, f"snakemake_executor_plugin_{name}", None)  # `import` of it raises ImportError
    path = ROOT / "src" / f"snakemake_executor_plugin_portaflow_{name}" / "__init__.py"
    spec = importlib.util.spec_from_file_location(f"portaflow_plugin_without_upstream_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    registry.validate_plugin(f"snakemake_executor_plugin_portaflow_{name}", module)
    with pytest.raises(WorkflowError, match=rf"needs snakemake-executor-plugin-{name}.*pip install 'portaflow\[{name}\]'"):
        module.Executor(None, None)


def test_cancel_run_deletes_the_runs_jobs_and_pods_by_label():
    scheduler = scheduler_for("kubernetes")(load_site("example-egi-cloud-k8s"))
    seen: dict[str, list] = {"selectors": [], "jobs": [], "pods": [], "collections": []}

    def items(*names):
        return type("L", (), {"items": [client.V1Job(metadata=client.V1ObjectMeta(name=n)) for n in names]})()

    class Batch:
        def list_namespaced_job(self, namespace, label_selector):
            seen["selectors"].append((namespace, label_selector))
            return items("snakejob-a")

        def delete_namespaced_job(self, name, namespace, propagation_policy):
            seen["jobs"].append(name)

        def delete_collection_namespaced_job(self, namespace, label_selector, propagation_policy):
            seen["collections"].append(("jobs", label_selector, propagation_policy))

    class Core:
        def list_namespaced_pod(self, namespace, label_selector):
            seen["selectors"].append((namespace, label_selector))
            return items("parsl.block-0.abc")

        def delete_namespaced_pod(self, name, namespace):
            seen["pods"].append(name)

        def delete_collection_namespaced_pod(self, namespace, label_selector):
            seen["collections"].append(("pods", label_selector, None))

    scheduler.apis = lambda: (Batch(), Core())
    deleted = scheduler.cancel_run("20250101-000000-parsl-ab12", ["snakejob-b"])
    assert seen["selectors"] == [("portaflow", f"{RUN_LABEL}=20250101-000000-parsl-ab12")] * 2
    selector = f"{RUN_LABEL}=20250101-000000-parsl-ab12"
    assert seen["collections"] == [("jobs", selector, "Background"), ("pods", selector, None)]  # one deletecollection each
    assert seen["jobs"] == ["snakejob-b"] and seen["pods"] == []  # by name only what carries no label
    assert deleted == ["snakejob-a", "snakejob-b", "parsl.block-0.abc"]


def test_cancel_run_against_an_api_server_deletes_only_the_runs_objects(tmp_path, monkeypatch):
    """Over real HTTP (the stand-in API server): the run's Job and Pod go, another run's Pod stays, and a site that
    says it runs the Dask operator where the operator's resource is missing (404) still gets its pods deleted."""
    from standin_kube import StandInKube

    with StandInKube(tmp_path / "kube") as kube:
        monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kube.kubeconfig))
        scheduler = scheduler_for("kubernetes")(load_site("example-cloud-gpu-k8s", {"kubernetes.dask_operator": "true"}))
        batch, core = scheduler.apis()
        namespace = "research-pipelines"

        def pod_spec():
            return client.V1PodSpec(restart_policy="Never", containers=[client.V1Container(name="c", image="x", command=["sleep", "60"])])

        def meta(name, run):
            return client.V1ObjectMeta(name=name, labels={RUN_LABEL: run})

        batch.create_namespaced_job(namespace, client.V1Job(metadata=meta("snakejob-a", "run-1"), spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(spec=pod_spec()))))
        core.create_namespaced_pod(namespace, client.V1Pod(metadata=meta("parsl-block-0", "run-1"), spec=pod_spec()))
        core.create_namespaced_pod(namespace, client.V1Pod(metadata=meta("other-run", "run-2"), spec=pod_spec()))
        deleted = scheduler.cancel_run("run-1", ["snakejob-gone"])
        assert deleted == ["snakejob-a", "snakejob-gone", "parsl-block-0"]
        assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["other-run"]
        assert ("GET", f"/apis/kubernetes.dask.org/v1/namespaces/{namespace}/daskclusters") in kube.calls
        assert kube.problems == []


def test_cancel_run_without_a_cluster_configuration_does_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    scheduler = scheduler_for("kubernetes")(load_site("example-egi-cloud-k8s"))
    assert scheduler.cancel_run("run", ["snakejob-x"]) == []


def test_object_store_snakefile_stages_relative_inputs_and_refuses_unmounted_absolute_ones(tmp_path):
    """Relative inputs no task makes are staged into the store; an absolute one cannot be (the step's command names
    it where it is), so it must be mounted in every pod by a volume claim, or the render exits 2 saying so."""
    workflow = tmp_path / "inputs.yaml"
    workflow.write_text(
        "name: inputs\nsteps:\n  read:\n    command: cat {inputs.raw} {inputs.shared} > {outputs.out}\n"
        "    inputs: {raw: raw/measurements.csv, shared: /data/shared/calibration.csv}\n    outputs: {out: copy.csv}\n")
    result, out = render(tmp_path, workflow, "example-cloud-gpu-k8s", "snakemake")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "/data/shared/calibration.csv is outside the work directory" in result.stderr
    assert "no volume claim of site example-cloud-gpu-k8s is mounted above it" in result.stderr

    site = yaml.safe_load((ROOT / "site_profiles" / "example-cloud-gpu-k8s.yaml").read_text())
    site["kubernetes"]["volume_claims"] = [{"claim": "shared-data", "mount_path": "/data/shared", "read_only": True}]
    (tmp_path / "mounted.yaml").write_text(yaml.safe_dump(site))
    result, out = render(tmp_path, workflow, str(tmp_path / "mounted.yaml"), "snakemake")
    assert result.returncode == 0, result.stderr
    snakefile = (out / "Snakefile").read_text()
    assert "local('/data/shared/calibration.csv')," in snakefile  # read where the claim mounts it, never staged
    stage = snakefile[snakefile.index("rule portaflow_stage_0:"):].split("\n\n")[0]
    assert "input: local('raw/measurements.csv')" in stage and "output: 'raw/measurements.csv'" in stage
    assert "portaflow_stage_1" not in snakefile
    fetch = snakefile[snakefile.index("rule portaflow_fetch_read:"):].split("\n\n")[0]
    assert "'copy.csv'," in fetch and "local('copy.csv')," in fetch
