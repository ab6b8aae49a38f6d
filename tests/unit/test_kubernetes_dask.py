"""Dask workers as pods on Kubernetes sites (`dask.mode: jobs`): specs rendered from the profile, checked offline.

No API server runs here. The worker pods (and, for sites with the Dask operator, the DaskCluster) are rendered
through `portaflow render`, validated with kubernetes-validate (strict) and portaflow's own checks, and read back;
the dask/ files are golden-tested (PORTAFLOW_UPDATE_GOLDEN=1 regenerates them). The runtime's pod path is run
against a stand-in API whose `create_namespaced_pod` starts the pod's own command line as a local process.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")
from kubernetes import client  # noqa: E402

from portaflow.runtime import dask_pods  # noqa: E402
from portaflow.schedulers import scheduler_for  # noqa: E402
from portaflow.schedulers.kubernetes import KUBERNETES_VERSION, RUN_LABEL, TASK_LABEL, check_manifest  # noqa: E402
from portaflow.schedulers.kubernetes.dask import dask_resource_problems  # noqa: E402
from portaflow.spec.loading import load_site  # noqa: E402

from test_golden_render import GOLDEN, normalise  # noqa: E402
from testlib import ROOT, run_portaflow  # noqa: E402

SURVEY = ROOT / "tests" / "data" / "workflows" / "dask_gpu_survey.yaml"
PVC_WORKDIR = "/data/portaflow/golden"
CASES = [
    ("example-egi-cloud-k8s", "parsl", False),
    ("example-cloud-gpu-k8s", "snakemake", False),
    ("example-cloud-gpu-k8s", "snakemake", True),
]
GPU_POOL = {
    "example-egi-cloud-k8s": ({"egi.eu/pool": "gpu"}, {"egi.eu/pool": "cpu"},
                              [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]),
    "example-cloud-gpu-k8s": ({"cloud.google.com/gke-nodepool": "gpu-l4"}, {"cloud.google.com/gke-nodepool": "standard"},
                              [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}]),
}


def render(tmp_path: Path, site: str, engine: str, operator: bool = False, *extra: str):
    out = tmp_path / "render"
    sets = ["--site-set", "dask.mode=jobs"] + (["--site-set", "kubernetes.dask_operator=true"] if operator else [])
    result = run_portaflow("render", str(SURVEY), "--site", site, "--engine", engine, "-o", str(out),
                           "--workdir", PVC_WORKDIR, *sets, *extra, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return out


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def pods_by_kind(out: Path) -> dict[str, dict]:
    return {d["metadata"]["labels"][dask_pods.WORKER_LABEL]: d for d in docs(out / "dask" / "survey.yaml")}


@pytest.mark.parametrize("site, engine, operator", CASES, ids=lambda v: str(v))
def test_rendered_dask_specs_validate_and_match_golden(tmp_path, site, engine, operator):
    out = render(tmp_path, site, engine, operator)
    files = [p for p in sorted(out.rglob("*")) if p.is_file()]
    dask_file = out / "dask" / "survey.yaml"
    assert dask_file in files
    for doc in docs(dask_file):
        if operator:
            assert doc["kind"] in ("DaskCluster", "DaskWorkerGroup")
            assert dask_resource_problems(doc) == []
        else:
            assert doc["kind"] == "Pod"
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            assert check_manifest(doc) == []
    # the scheduler's own check of everything rendered (what the portability matrix runs) covers the dask/ file too
    assert scheduler_for("kubernetes")(load_site(site)).check_rendered(files) == []
    golden_dir = GOLDEN / f"dask_gpu_survey--{site}--{engine}--dask-{'operator' if operator else 'pods'}"
    rel = Path("dask") / "survey.yaml"
    text = normalise(dask_file.read_text(), out)
    if os.environ.get("PORTAFLOW_UPDATE_GOLDEN") == "1":
        (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (golden_dir / rel).write_text(text)
    assert text == (golden_dir / rel).read_text(), f"differs from {golden_dir / rel}"


@pytest.mark.parametrize("site, engine", [("example-egi-cloud-k8s", "parsl"), ("example-cloud-gpu-k8s", "snakemake")])
def test_gpu_worker_lands_on_the_gpu_pool_and_cpu_worker_does_not(tmp_path, site, engine):
    out = render(tmp_path, site, engine)
    pods = pods_by_kind(out)
    assert sorted(pods) == ["cpu", "gpu"]
    gpu_selector, cpu_selector, gpu_tolerations = GPU_POOL[site]
    profile = load_site(site).site
    image = profile.container.images["portaflow"]
    for pod in pods.values():
        spec, container = pod["spec"], pod["spec"]["containers"][0]
        assert pod["metadata"]["labels"][RUN_LABEL] == "render" and pod["metadata"]["labels"][TASK_LABEL] == "survey"
        assert pod["metadata"]["namespace"] == profile.kubernetes.namespace
        assert spec["restartPolicy"] == "Never"
        assert spec["activeDeadlineSeconds"] == 20 * 60 + profile.kubernetes.deadline_grace
        assert container["image"] == image
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert container["command"] == ["dask", "worker"]
        assert {"name": dask_pods.SCHEDULER_ENV, "value": "tcp://STEP-POD-IP:8786"} in container["env"]
    gpu, cpu = pods["gpu"], pods["cpu"]
    assert gpu["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["nodeSelector"] == gpu_selector and gpu["spec"]["tolerations"] == gpu_tolerations
    assert "--resources" in gpu["spec"]["containers"][0]["args"]
    assert "nvidia.com/gpu" not in cpu["spec"]["containers"][0]["resources"]["limits"]
    assert cpu["spec"]["nodeSelector"] == cpu_selector and "tolerations" not in cpu["spec"]
    assert "--resources" not in cpu["spec"]["containers"][0]["args"]


def test_operator_cluster_keeps_the_profile_and_deployment_rules(tmp_path):
    out = render(tmp_path, "example-cloud-gpu-k8s", "snakemake", operator=True)
    cluster, group = docs(out / "dask" / "survey.yaml")
    assert cluster["kind"] == "DaskCluster" and group["kind"] == "DaskWorkerGroup"
    assert group["spec"]["cluster"] == cluster["metadata"]["name"]
    assert cluster["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == cluster["metadata"]["name"]
    for body in (cluster, group):
        assert body["metadata"]["labels"][RUN_LABEL] == "render"
        assert body["spec"]["worker"]["metadata"]["labels"][RUN_LABEL] == "render"
        assert "restartPolicy" not in body["spec"]["worker"]["spec"]  # Deployments: Always only
    cpu, gpu = cluster["spec"]["worker"]["spec"], group["spec"]["worker"]["spec"]
    assert cpu["nodeSelector"] == {"cloud.google.com/gke-nodepool": "standard"}
    assert gpu["nodeSelector"] == {"cloud.google.com/gke-nodepool": "gpu-l4"}
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["tolerations"] == GPU_POOL["example-cloud-gpu-k8s"][2]
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]


def test_in_allocation_renders_no_worker_specs(tmp_path):
    out = tmp_path / "render"
    result = run_portaflow("render", str(SURVEY), "--site", "example-egi-cloud-k8s", "--engine", "parsl", "-o", str(out),
                           "--workdir", PVC_WORKDIR, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert not (out / "dask").exists()


@pytest.mark.parametrize("change, words", [
    (lambda p: p["spec"]["containers"][0]["resources"]["limits"].update({"nvidia.com/gpu": "2"}), "must equal its limit"),
    (lambda p: p["spec"]["containers"][0].update(gpus=1), "strict"),
    (lambda p: p["metadata"]["labels"].update({RUN_LABEL: "bad run id"}), "metadata.labels"),
    (lambda p: p["spec"].update(restartPolicy="Sometimes"), "restartPolicy"),
])
def test_a_broken_worker_pod_is_caught(tmp_path, change, words):
    out = render(tmp_path, "example-egi-cloud-k8s", "parsl")
    path = out / "dask" / "survey.yaml"
    bodies = docs(path)
    change(bodies[1])
    path.write_text(yaml.safe_dump_all(bodies))
    problems = scheduler_for("kubernetes")(load_site("example-egi-cloud-k8s")).check_rendered([path])
    assert any(words in p for p in problems), problems
    assert all(p.startswith("survey.yaml: Pod pf-survey-dask-gpu") for p in problems)


@pytest.mark.parametrize("change, words", [
    (lambda c, g: c["spec"]["worker"]["spec"].update(restartPolicy="Never"), "accept only Always"),
    (lambda c, g: c["spec"]["worker"]["spec"].update(activeDeadlineSeconds=60), "not allowed in a Deployment"),
    (lambda c, g: c["spec"]["worker"].update(replica=2), "unknown field"),
    (lambda c, g: c["spec"].pop("scheduler"), "spec.scheduler: required"),
    (lambda c, g: g["spec"]["worker"]["spec"]["containers"][0]["resources"]["requests"].update(memory="1 GB"), "not a Kubernetes quantity"),
    (lambda c, g: g["spec"]["worker"]["spec"]["containers"][0].update(gpus=1), "strict"),
    (lambda c, g: c["spec"]["scheduler"]["service"].update(kind="ClusterIP"), "strict"),
    (lambda c, g: c["metadata"].update(name="x" * 60), "at most 53"),
])
def test_a_broken_dask_cluster_is_caught(tmp_path, change, words):
    out = render(tmp_path, "example-cloud-gpu-k8s", "snakemake", operator=True)
    path = out / "dask" / "survey.yaml"
    cluster, group = docs(path)
    change(cluster, group)
    path.write_text(yaml.safe_dump_all([cluster, group]))
    problems = scheduler_for("kubernetes")(load_site("example-cloud-gpu-k8s")).check_rendered([path])
    assert any(words in p for p in problems), problems


def test_runtime_names_each_worker_pod_and_points_it_at_the_scheduler(tmp_path):
    """What the step's pod gets in PORTAFLOW_DASK is what render showed: the same function expands it."""
    out = render(tmp_path, "example-egi-cloud-k8s", "parsl")
    script = (out / "apps" / "survey.sh").read_text()
    settings = yaml.safe_load(re.search(r"export PORTAFLOW_DASK='(.*?)'", script).group(1))
    assert settings["scheduler"] == "kubernetes" and settings["namespace"] == "portaflow"
    assert settings["selector"] == {RUN_LABEL: "render", TASK_LABEL: "survey"}
    pods = dask_pods.worker_pods(settings, "tcp://10.1.2.3:8786", "abc123")
    assert [p["metadata"]["name"] for p in pods] == ["pf-survey-dask-cpu-abc123-0", "pf-survey-dask-gpu-abc123-0"]
    assert all(p["metadata"]["labels"][dask_pods.CLUSTER_LABEL] == "abc123" for p in pods)
    assert {"name": dask_pods.SCHEDULER_ENV, "value": "tcp://10.1.2.3:8786"} in pods[0]["spec"]["containers"][0]["env"]
    rendered = docs(out / "dask" / "survey.yaml")
    assert [p["spec"]["nodeSelector"] for p in pods] == [p["spec"]["nodeSelector"] for p in rendered]


class LocalPods:
    """A stand-in CoreV1Api: each created pod's own command line runs as a local process (no cluster here)."""

    def __init__(self):
        self.procs: dict[str, subprocess.Popen] = {}
        self.bodies: dict[str, dict] = {}
        self.deleted: list[str] = []

    def read_namespaced_pod(self, name, namespace):
        return client.V1Pod(metadata=client.V1ObjectMeta(name=name, uid="uid-of-step-pod"))

    def create_namespaced_pod(self, namespace, body):
        container = body["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container.get("env") or []}
        argv = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in container["command"] + container["args"]]
        argv = [sys.executable, "-m", "distributed.cli.dask_worker"] + argv[2:]  # `dask worker` from this venv
        self.bodies[body["metadata"]["name"]] = body
        self.procs[body["metadata"]["name"]] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def list_namespaced_pod(self, namespace, label_selector):
        wanted = dict(item.split("=", 1) for item in label_selector.split(","))
        items = [client.V1Pod(metadata=client.V1ObjectMeta(name=n)) for n, b in self.bodies.items()
                 if wanted.items() <= b["metadata"]["labels"].items()]
        return type("L", (), {"items": items})()

    def delete_namespaced_pod(self, name, namespace, grace_period_seconds=None):
        self.deleted.append(name)
        self.procs[name].terminate()
        self.procs[name].wait(30)


@pytest.mark.timeout(180)
def test_pod_cluster_runs_workers_from_the_rendered_command_lines(tmp_path, monkeypatch):
    """The runtime path, with the pods' command lines run locally: workers join the step's scheduler, a GPU task
    lands on the GPU worker only, and every worker pod is deleted by label at the end."""
    from distributed import Client, get_worker
    from kubernetes import config

    out = render(tmp_path, "example-egi-cloud-k8s", "parsl")
    settings = yaml.safe_load(re.search(r"export PORTAFLOW_DASK='(.*?)'", (out / "apps" / "survey.sh").read_text()).group(1))
    settings = copy.deepcopy(settings) | {"interface": "lo", "port": _free_port(), "start_timeout_s": 120}
    for template in settings["worker_pods"].values():  # a small memory limit is fine for local processes
        template["spec"]["containers"][0]["args"] = [a.replace("954MiB", "0") for a in template["spec"]["containers"][0]["args"]]
    api = LocalPods()
    monkeypatch.setattr(config, "load_incluster_config", lambda: None)
    monkeypatch.setattr(client, "CoreV1Api", lambda: api)
    try:
        with dask_pods.kubernetes_cluster(settings) as cluster, Client(cluster) as dask_client:
            names = sorted(w["name"] for w in dask_client.scheduler_info()["workers"].values())
            assert names == sorted(api.bodies)
            on_gpu = dask_client.submit(lambda: get_worker().name, resources={"GPU": 1}, pure=False).result(timeout=60)
            assert on_gpu.startswith("pf-survey-dask-gpu-")
        assert all(b["metadata"]["ownerReferences"][0]["uid"] == "uid-of-step-pod" for b in api.bodies.values())
        assert sorted(api.deleted) == sorted(api.bodies)
    finally:
        for proc in api.procs.values():
            if proc.poll() is None:
                proc.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cancel_run_deletes_dask_clusters_first_when_the_site_has_the_operator(monkeypatch):
    scheduler = scheduler_for("kubernetes")(load_site("example-cloud-gpu-k8s", overrides={"kubernetes.dask_operator": "true"}))
    calls: list[tuple] = []

    class Custom:
        def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector):
            calls.append(("list", plural, label_selector))
            return {"items": [{"metadata": {"name": "pf-survey-dask-1a2b3c"}}]}

        def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
            calls.append(("delete", plural, name))

    empty = type("L", (), {"items": []})()
    pods = type("L", (), {"items": [client.V1Pod(metadata=client.V1ObjectMeta(name="pf-survey-dask-worker-0"))]})()
    batch = type("B", (), {"list_namespaced_job": lambda self, ns, label_selector: empty,
                           "delete_collection_namespaced_job": lambda self, ns, label_selector, propagation_policy:
                           calls.append(("deletecollection", "jobs", label_selector))})()
    core = type("C", (), {"list_namespaced_pod": lambda self, ns, label_selector: pods,
                          "delete_collection_namespaced_pod": lambda self, ns, label_selector:
                          calls.append(("deletecollection", "pods", label_selector))})()
    scheduler.apis = lambda: (batch, core)
    monkeypatch.setattr(client, "CustomObjectsApi", lambda: Custom())
    assert scheduler.cancel_run("run-9", []) == ["pf-survey-dask-1a2b3c", "pf-survey-dask-worker-0"]
    selector = f"{RUN_LABEL}=run-9"
    assert calls == [("deletecollection", "jobs", selector), ("list", "daskclusters", selector),
                     ("delete", "daskclusters", "pf-survey-dask-1a2b3c"), ("deletecollection", "pods", selector)]
