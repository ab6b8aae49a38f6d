"""Both engines on Kubernetes sites, run end to end as far as this machine allows.

No API server and no object store run here, so two loopback stand-ins take their place, and everything
else is the product's real path. Snakemake (object-store staging, example-cloud-gpu-k8s): `portaflow run`
runs it with portaflow's executor plugin (portaflow-kubernetes: the real kubernetes executor plugin, subclassed) and S3 storage plugin; the
plugin's Jobs (completed and checked by portaflow) go over HTTP to `standin_kube.StandInKube`, which runs
each pod's command as a local process in an empty directory (no shared filesystem, as on the cloud site);
files travel through S3's protocol to moto's server (an S3 implementation for tests, not a production
store); the credentials reach the pods only through the Secret the plugin creates. Parsl (volume claim,
example-egi-cloud-k8s): the real KubernetesProvider creates one pod per block through the same stand-in,
whose worker pool connects back to the driver; the "claim" is a directory both see. What differs from a
cloud: the pods run this machine's programs instead of the image, and nothing schedules them onto nodes.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import yaml

from testlib import ROOT, run_portaflow

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")
from standin_kube import StandInKube  # noqa: E402

SITE = "example-cloud-gpu-k8s"
BUCKET = "example-portaflow-runs"  # the example profile's object_store.prefix: s3://example-portaflow-runs/staging
PREFIX = "staging/wordfreq/"
WORDFREQ = ROOT / "workflows" / "examples" / "wordfreq.yaml"
FAILING = ROOT / "tests" / "data" / "workflows" / "failing.yaml"
CREDENTIALS = {"SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "portaflow-test", "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "not-a-secret"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cloud(tmp_path):
    """The S3 stand-in with the profile's bucket, the API stand-in, and `portaflow run` pointed at both."""
    port = _free_port()
    s3 = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=CREDENTIALS["SNAKEMAKE_STORAGE_S3_ACCESS_KEY"],
                          aws_secret_access_key=CREDENTIALS["SNAKEMAKE_STORAGE_S3_SECRET_KEY"])
    client.create_bucket(Bucket=BUCKET)
    # Pods start from a bare environment: this machine's programs, and nothing of the driver's credentials.
    pod_env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path / "pod-home")}
    kube = StandInKube(tmp_path / "kube", base_env=pod_env).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_STORAGE_"))}
    env.update(CREDENTIALS, KUBECONFIG=str(kube.kubeconfig), HOME=str(tmp_path / "driver-home"))

    def run(workflow: Path, workdir: Path, *extra: str, site: str = SITE, engine: str = "snakemake"):
        args = ["run", str(workflow), "--site", site, "--engine", engine, "-w", str(workdir), "--site-set", "polling.interval=1s", *extra]
        if engine == "snakemake":
            args += ["--site-set", f"kubernetes.object_store.endpoint_url={endpoint}"]
        full_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
        return run_portaflow(*args, env=full_env, timeout=540)

    def keys() -> set[str]:
        listing = client.list_objects_v2(Bucket=BUCKET)
        return {o["Key"] for o in listing.get("Contents", [])}

    yield type("Cloud", (), {"run": staticmethod(run), "kube": kube, "s3": client, "keys": staticmethod(keys)})
    kube.stop()
    s3.stop()


def _manifest(workdir: Path) -> dict:
    return json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())


def _same_as_on_the_local_site(work: Path, local: Path, engine: str) -> list[str]:
    """Run wordfreq (small) on the local site with the same engine; every output of `work` must equal its file."""
    reference = run_portaflow("run", str(WORDFREQ), "--site", "local", "--engine", engine, "--preset", "small", "-w", str(local))
    assert reference.returncode == 0, reference.stdout + reference.stderr
    outputs = sorted(_manifest(local)["outputs"])
    assert outputs == sorted(_manifest(work)["outputs"]) and len(outputs) == 5
    for path in outputs:
        assert (work / path).read_bytes() == (local / path).read_bytes(), path
    return outputs


def test_wordfreq_runs_through_the_plugin_and_the_store_and_outputs_come_back(cloud, tmp_path):
    work = tmp_path / "work"
    result = cloud.run(WORDFREQ, work, "--preset", "small")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count("done merge") == 1  # progress reported from Snakemake's word (no markers without a shared filesystem)

    outputs = _same_as_on_the_local_site(work, tmp_path / "local", "snakemake")  # fetched back from the store
    assert all(t["status"] == "ran" for t in _manifest(work)["tasks"].values())

    # Each step ran as a Job the plugin created and portaflow completed from the profile; every body the
    # server received passes the strict schema; the plugin deleted each Job and its Secret afterwards.
    jobs = [b for b in cloud.kube.received if b["kind"] == "Job"]
    assert len(jobs) == 5 and cloud.kube.problems == []
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"cloud.google.com/gke-nodepool": "standard"}
        assert job["spec"]["ttlSecondsAfterFinished"] == 1800
        assert pod["containers"][0]["image"].endswith("/portaflow:0.1.0")
        assert "pip install" not in " ".join(pod["containers"][0]["args"])  # no plugin deployment in the pods
    assert {j["metadata"]["name"] for j in jobs} <= set(cloud.kube.deleted)
    secrets = [b for b in cloud.kube.received if b["kind"] == "Secret"]
    assert len(secrets) == 1 and secrets[0]["metadata"]["name"] in cloud.kube.deleted_secrets
    assert all(e["valueFrom"]["secretKeyRef"]["name"] == secrets[0]["metadata"]["name"]
               for j in jobs for e in j["spec"]["template"]["spec"]["containers"][0]["env"])
    assert {PREFIX + p for p in outputs} <= cloud.keys()  # the files went through the store, under the workflow's prefix

    # Only `merge` is stale after --param top=3. Its inputs are staged from the work directory, not taken from
    # what the store may still hold: they are deleted from the store first, so only staging can bring them.
    for key in cloud.keys():
        cloud.s3.delete_object(Bucket=BUCKET, Key=key)
    second = cloud.run(WORDFREQ, work, "--preset", "small", "--param", "top=3")
    assert second.returncode == 0, second.stdout + second.stderr
    tasks = _manifest(work)["tasks"]
    assert tasks["merge"]["status"] == "ran"
    assert sorted(t for t, info in tasks.items() if info["status"] == "up to date") == [
        "count__shard_0", "count__shard_1", "make_text__shard_0", "make_text__shard_1"]
    assert sum(b["kind"] == "Job" for b in cloud.kube.received) == 6
    assert len(json.loads((work / "results" / "top_words.json").read_text())["top"]) == 3
    assert {PREFIX + "counts/shard_0.tsv", PREFIX + "counts/shard_1.tsv"} <= cloud.keys()


def test_a_failing_step_is_reported_with_its_pod_log_and_exit_code(cloud, tmp_path):
    work = tmp_path / "work"
    result = cloud.run(FAILING, work)
    assert result.returncode == 1, result.stdout + result.stderr
    tasks = _manifest(work)["tasks"]
    assert {t: info["status"] for t, info in tasks.items()} == {"first": "ran", "broken": "failed", "last": "failed", "independent": "ran"}
    assert "failed broken exit code 7: the command failed" in result.stdout
    step_log = work / ".portaflow" / "runs" / "latest" / "logs" / "broken.log"
    assert f"log: {step_log.resolve()}" in result.stdout.replace("\n", "")
    assert "something went wrong" in step_log.read_text()  # the pod's log, saved by the plugin, copied to the step's log
    assert "not run: a task it depends on failed" in result.stdout
    assert sorted(_manifest(work)["outputs"]) == ["independent.txt", "one.txt"]
    assert not (work / "two.txt").exists() and not (work / "three.txt").exists()
    assert cloud.kube.problems == []


def test_parsl_blocks_run_as_pods_on_the_volume_claim(cloud, tmp_path):
    claim = tmp_path / "claim"  # stands in for the PVC: the driver and the pods see it at the same path
    site = yaml.safe_load((ROOT / "site_profiles" / "example-egi-cloud-k8s.yaml").read_text())
    site["kubernetes"]["volume_claims"] = [{"claim": "portaflow-data", "mount_path": str(claim)}]
    site["network"] = {"address": "127.0.0.1"}  # where pods reach the driver's interchange
    profile = tmp_path / "egi.yaml"
    profile.write_text(yaml.safe_dump(site))
    work = claim / "wordfreq"
    result = cloud.run(WORDFREQ, work, "--preset", "small", site=str(profile), engine="parsl")
    assert result.returncode == 0, result.stdout + result.stderr

    _same_as_on_the_local_site(work, tmp_path / "local", "parsl")

    pods = [b for b in cloud.kube.received if b["kind"] == "Pod"]
    assert pods and cloud.kube.problems == []
    run_id = _manifest(work)["run_id"]
    for pod in pods:
        spec = pod["spec"]
        assert pod["metadata"]["labels"]["portaflow/run-id"] == run_id
        assert spec["nodeSelector"] == {"egi.eu/pool": "cpu"} and spec["restartPolicy"] == "Never"
        assert spec["volumes"] == [{"name": "portaflow-data", "persistentVolumeClaim": {"claimName": "portaflow-data"}}]
        assert spec["containers"][0]["image"] == "registry.egi.example/portaflow/portaflow:0.1.0"
    cloud.kube.wait_idle(60)  # Parsl stops its blocks at the end: no pod is left running, each one deleted
    assert {p["metadata"]["name"] for p in pods} <= set(cloud.kube.deleted)
