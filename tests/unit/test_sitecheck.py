"""`portaflow site check` without a cluster: the local site's probe runs as a process here (really: its bash, its
connection to the listener), the verdicts from a probe's result, and schedulers that cannot take a probe.
The multi-node SLURM cluster's checks (a good profile, an address the nodes cannot route to, a probe stuck in the
queue) are in tests/slurm/test_multinode.py."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("site", ["example-cern-htcondor", "example-cloud-gpu-k8s"])
def test_schedulers_without_probes_say_so_and_submit_nothing(tmp_path, site):
    result = run_portaflow("site", "check", site, "--workdir", str(tmp_path / "check"), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "probe jobs are not available for scheduler" in result.stderr and "nothing was submitted" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "check").exists()


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
