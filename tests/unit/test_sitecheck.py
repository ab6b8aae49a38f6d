"""`portaflow site check` without a cluster: the local site's probe runs as a process here (really: its bash, its
connection to the listener), the verdicts from a probe's result, and schedulers that cannot take a probe.
The multi-node SLURM cluster's checks (a good profile, an address the nodes cannot route to, a probe stuck in the
queue) are in tests/slurm/test_multinode.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from portaflow.schedulers.base import ProbeJob
from portaflow.sitecheck import Listener, PartitionReport, judge, probe_script
from portaflow.spec.loading import load_site

from testlib import ROOT, run_portaflow


def test_the_local_site_passes_and_the_probe_reached_the_listener(tmp_path):
    result = run_portaflow("site", "check", "local", "--json", "--workdir", str(tmp_path / "check"), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["address"] == "127.0.0.1" and report["interface"] == "lo", report
    [part] = report["partitions"]
    assert part["reachable"] is True and part["host"] == socket.gethostname(), part
    assert "reached from" in part["reach"] and part["problems"] == [], part


def test_a_failing_worker_init_line_is_reported_with_its_key(tmp_path):
    result = run_portaflow("site", "check", "local", "--site-set", 'environment.worker_init=["true", "false"]',
                           "--workdir", str(tmp_path), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PROBLEMS" in result.stdout and "environment set-up" in result.stdout, result.stdout  # the table
    [part] = json.loads(run_portaflow("site", "check", "local", "--site-set", 'environment.worker_init=["true", "false"]', "--json",
                                      "--workdir", str(tmp_path), timeout=60).stdout)["partitions"]
    assert part["setup"] == "2 line(s) ran, 1 command(s) failed", part
    assert part["problems"] == [f"environment set-up: 1 command(s) of environment.modules/worker_init failed (see {tmp_path}/local.setup.log)"]
    assert part["reachable"] is True  # the rest of the probe still ran


@pytest.mark.parametrize("site, unchecked", [
    ("example-cern-htcondor", "condor_q and condor_status not on PATH here"),
    ("example-cloud-gpu-k8s", "no Kubernetes configuration"),
])
def test_schedulers_without_their_tools_here_say_what_could_not_be_checked_and_submit_nothing(tmp_path, site, unchecked):
    """HTCondor and Kubernetes on a machine without condor_q / a kubeconfig: every comparison and the probes are "could
    not check" with the reason; nothing is wrong, so exit 0, and nothing is written."""
    result = run_portaflow("site", "check", site, "--json", "--workdir", str(tmp_path / "check"), timeout=60,
                           env={"KUBECONFIG": str(tmp_path / "none")})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["partitions"] == [] and not report["probed"], report
    verdicts = [f["verdict"] for f in report["findings"]]
    assert verdicts and set(verdicts) == {"could not check"}, report["findings"]
    assert unchecked in report["findings"][0]["why"], report["findings"]
    assert "probe jobs are not available for scheduler" in report["findings"][-1]["why"]
    assert "Traceback" not in result.stderr and not (tmp_path / "check").exists()


def test_a_kubernetes_api_server_that_does_not_answer_is_could_not_check(tmp_path):
    """A kubeconfig whose server refuses connections (a closed port on loopback): the API server check says so, and
    the namespace, node pools and claims are "could not check", not "wrong"."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: not-a-secret}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    result = run_portaflow("site", "check", "example-cloud-gpu-k8s", "--no-probe", "--json", timeout=120, env={"KUBECONFIG": str(config)})
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert findings[0]["what"] == "the API server answers" and "does not answer" in findings[0]["why"], findings[0]
    keys = {f["key"] for f in findings[1:]}
    assert {"kubernetes.namespace", "kubernetes.node_pools.standard.node_selector"} <= keys, keys
    assert all(f["verdict"] == "could not check" for f in findings), findings


def test_the_local_site_compares_its_partition_with_this_machine(tmp_path):
    result = run_portaflow("site", "check", "local", "--no-probe", "--json", "--site-set", "partitions.local.cores_per_node=100000",
                           timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [wrong] = [f for f in report["findings"] if f["verdict"] == "wrong"]
    assert wrong["key"] == "partitions.local.cores_per_node" and wrong["profile"] == "100000", wrong
    assert wrong["text"].startswith("wrong: profile says 100000, site says ") and report["partitions"] == [], wrong


def test_an_unknown_partition_is_bad_input(tmp_path):
    result = run_portaflow("site", "check", "local", "--partition", "nosuch", "--workdir", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "has no partition 'nosuch'" in result.stderr, result.stderr


def _probe_values(**extra: str) -> dict[str, str]:
    values = {"host": "node7", "node": "node7", "started": "100.0", "setup_lines": "2", "setup_failed": "0",
              "container": "none", "image": "", "cuda_visible_devices": "", "nvidia_smi": "0"}
    return {**values, **extra}


def test_an_unreachable_address_is_a_problem_naming_the_address_interface_and_reason():
    report = PartitionReport("multi", job="7")
    judge(report, _probe_values(connect_rc="1", connect_error="bash: connect: Network is unreachable bash: line 1: "
                                "/dev/tcp/192.0.2.2/4000: Network is unreachable"),
          ProbeJob("multi", "7", 98.0), "192.0.2.2", 4000, "eth0", None)
    assert report.reachable is False and report.queue_wait_s == 2.0
    assert report.reach == "192.0.2.2:4000 (eth0) unreachable from node7: Network is unreachable"
    assert len(report.problems) == 1 and "set network.address (or network.interface)" in report.problems[0]


def test_a_silent_address_times_out_and_gpus_promised_but_unseen_are_problems():
    report = PartitionReport("gpu", job="8", gpus_expected=2)
    judge(report, _probe_values(connect_rc="124", connect_error=""), ProbeJob("gpu", "8", 100.0), "10.0.0.1", 4000, None, None)
    assert "no answer within 10 s" in report.reach
    assert any(p.startswith("GPUs:") for p in report.problems), report.problems
    seen = PartitionReport("gpu", job="9", gpus_expected=1)
    judge(seen, _probe_values(cuda_visible_devices="0", connect_rc="0"), ProbeJob("gpu", "9", 100.0), None, None, None, None)
    assert seen.ok and seen.gpus_seen.startswith("1 (CUDA_VISIBLE_DEVICES=0)"), seen


def test_the_listener_takes_reports_with_its_token_only():
    listener = Listener("127.0.0.1", None, "tok")
    try:
        for line in (b"portaflow-check wrong multi h\n", b"portaflow-check tok multi nodeA\n"):
            with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as conn:
                conn.sendall(line)
        for _ in range(50):
            if listener.report("multi"):
                break
            time.sleep(0.1)
        assert listener.report("multi")["host"] == "nodeA"
        assert listener.sock.getsockname()[0] == "127.0.0.1"  # that one address, not every address
    finally:
        listener.close()


def test_the_probe_script_is_valid_bash_with_the_sites_set_up_and_container(tmp_path):
    loaded = load_site(ROOT / "site_profiles" / "local-podman.yaml", {"environment.worker_init": '["echo one", "echo two"]'})
    container = next(iter(loaded.site.container.images), "hep")
    text = probe_script(loaded, "local", tmp_path, "127.0.0.1", 4000, "tok", container, 0)
    script = tmp_path / "probe.sh"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "echo one\necho two" in text and "podman run --rm" in text and "/dev/tcp/$1/$2" in text


def test_the_probe_writes_to_the_storage_directories(tmp_path):
    """`storage.scratch_dir` (expanded by the job's shell, as a step's is) is created and written; a `storage.work_dir`
    no job can create is a problem at its key."""
    result = run_portaflow("site", "check", "local", "--json", "--workdir", str(tmp_path / "check"),
                           "--site-set", "storage.scratch_dir=$PF_TEST_BASE/scratch", "--site-set", "storage.work_dir=/proc/portaflow-nowhere",
                           timeout=60, env={"PF_TEST_BASE": str(tmp_path)})
    assert result.returncode == 1, result.stdout + result.stderr
    [part] = json.loads(result.stdout)["partitions"]
    assert (tmp_path / "scratch").is_dir() and not list((tmp_path / "scratch").iterdir())
    assert part["directories"] == (f"scratch_dir {tmp_path}/scratch: writable; work_dir /proc/portaflow-nowhere: NOT writable"), part
    [problem] = part["problems"]
    assert problem.startswith("storage.work_dir: /proc/portaflow-nowhere cannot be created or written on "), problem


def test_htcondor_comparisons_read_what_condor_q_and_condor_status_answer(tmp_path):
    """HTCondor is not installed here, so stand-ins for condor_q and condor_status (first on PATH) answer as a pool
    whose schedd answers, whose collector does not, and whose slots' START reads MaxRuntime only: the schedd passes,
    the collector is wrong at its key, MaxRuntime passes and RequestRuntime (which a job transform might still read)
    is "could not check", never wrong."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "condor_q").write_text('#!/bin/sh\necho "Total for query: 0 jobs"\n')
    (bin_dir / "condor_status").write_text('#!/bin/sh\ncase "$*" in\n'
                                           '  *-collector*) echo "Error: Failed to connect to collector" >&2; exit 1 ;;\n'
                                           "  *START*) echo '(TARGET.MaxRuntime <= 86400) && (TARGET.RequestMemory < 4096)' ;;\nesac\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    result = run_portaflow("site", "check", "example-cern-htcondor", "--no-probe", "--json",
                           "--site-set", "htcondor.runtime_attribute=[MaxRuntime, RequestRuntime]",
                           env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    findings = [(f["key"], f["verdict"]) for f in json.loads(result.stdout)["findings"]]
    assert findings == [("htcondor.schedd", "passed"), ("htcondor.collector", "wrong"), ("htcondor.runtime_attribute", "passed"),
                        ("htcondor.runtime_attribute", "could not check")], findings
