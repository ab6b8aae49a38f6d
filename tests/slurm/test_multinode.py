"""Several hosts: the compute nodes of `tests/slurm/cluster.sh up --nodes 2` (pfnode1, pfnode2), each in a network
namespace of its own on the private bridge 10.77.0.0/24, where 127.0.0.1 is the node's own loopback. A listener
the workers cannot reach hangs a run here as it would on a real site, so these tests see that class of bug.

The profile (`tests/data/sites/slurm-multinode.yaml`) has no `network:` section: the driver's address (Parsl's
interchange) and each Dask step's scheduler address are chosen by `portaflow.addresses.choose_address`, and
the manifest records them and the host every Dask worker ran on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testlib import ROOT, run_portaflow, unavailable

SITE = ROOT / "tests" / "data" / "sites" / "slurm-multinode.yaml"
WHERE = ROOT / "tests" / "data" / "workflows" / "where.yaml"
NODES = {"pfnode1": "10.77.0.11", "pfnode2": "10.77.0.12"}
LOGIN = "10.77.0.1"


@pytest.fixture(scope="module")
def multinode(slurm_cluster):
    """The cluster, if it has the `multi` partition (`cluster.sh up --nodes 2`); else skip (fail under CI)."""
    if "multi" not in slurm_cluster.partitions:
        unavailable("the SLURM test cluster has no compute nodes in namespaces (start it with `cluster.sh up --nodes 2`)")
    return slurm_cluster


def manifest(workdir: Path) -> dict:
    return json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())


def test_each_node_is_a_host_of_its_own(multinode, tmp_path):
    """A job on each node sees that node's name as its host name and only its own bridge address; the login's
    loopback is not reachable from there (slurmctld listens on every address of the login host, so its port on
    127.0.0.1 answers on the login host and must not answer from a node)."""
    probe = ("hostname; echo $SLURMD_NODENAME; ip -4 -o addr show | awk '{print $4}' | sort | tr '\\n' ' '; echo; "
             "python3 -c 'import socket\n"
             "for a in (\"10.77.0.1\", \"127.0.0.1\"):\n"
             "    try: socket.create_connection((a, 6817), timeout=3).close(); print(a, \"open\")\n"
             "    except OSError: print(a, \"closed\")'")
    jobs = {node: multinode.submit("--partition=multi", f"--nodelist={node}", "--time=00:02:00",
                                   f"--output={tmp_path}/{node}.out", wrap=probe) for node in NODES}
    for job in jobs.values():
        multinode.wait_for_state(job, multinode.final_states, timeout=60)
    for node, address in NODES.items():
        lines = (tmp_path / f"{node}.out").read_text().splitlines()
        assert lines[:2] == [node, node], lines
        assert set(lines[2].split()) == {"127.0.0.1/8", f"{address}/24"}, lines
        assert lines[3:5] == [f"{LOGIN} open", "127.0.0.1 closed"], lines


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_steps_and_dask_workers_run_across_nodes_without_a_network_section(multinode, tmp_path, engine):
    result = run_portaflow("-v", "run", str(WHERE), "--site", str(SITE), "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every command step ran on a compute node (host name = SLURM node name), and not all on the same one.
    notes = [(tmp_path / "where" / f"{i}.txt").read_text().split() for i in range(4)]
    assert all(host == node and node in NODES for host, node in notes), notes
    assert len({node for _, node in notes}) >= 2, notes

    network = manifest(tmp_path)["network"]
    # The Dask step's scheduler listened on its node's bridge address, and its two workers ran on both nodes.
    survey = network["dask"]["survey"]
    scheduler_node = survey["scheduler_host"]["node"]
    assert survey["scheduler_address"]["address"] == NODES[scheduler_node], survey
    assert survey["scheduler"].startswith(f"tcp://{NODES[scheduler_node]}:"), survey
    workers = list(survey["workers"].values())
    assert len(workers) == 2 and {w["node"] for w in workers} == set(NODES), survey
    assert all(w["host"] == w["node"] for w in workers), survey
    assert json.loads((tmp_path / "report.json").read_text())["sum_of_squares"] == sum(i * i for i in range(8))
    if engine == "parsl":  # Parsl's workers connect back to the driver: on the login host's bridge address
        assert network["driver"]["address"] == LOGIN, network
        assert "route toward 10.77.0.1" in network["driver"]["chosen_by"], network
    else:  # Snakemake's jobs do not connect back
        assert network["driver"] is None, network


@pytest.mark.parametrize("network, message", [
    ({"interface": "lo"}, "network.interface: 127.0.0.1 is loopback, which Parsl workers on 10.77.0.11"),
    ({"interface": "nosuch0"}, "network.interface: 'nosuch0' does not exist on"),
    ({"address": "10.77.0.99"}, "network.address: 10.77.0.99 is not an address of"),
])
def test_an_address_the_nodes_cannot_reach_fails_at_once(multinode, tmp_path, network, message):
    """Before this check, each of these profiles had Parsl's workers retry an address they cannot reach (or an
    interchange that could not bind) until the walltime. Now: exit 2 before any job, naming the key."""
    site = tmp_path / "site.yaml"
    site.write_text(SITE.read_text() + "network:\n" + "".join(f"  {k}: {v}\n" for k, v in network.items()))
    start = time.monotonic()
    result = run_portaflow("run", str(WHERE), "--site", str(site), "--engine", "parsl", "--workdir", str(tmp_path / "w"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout + result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 60
    assert not list((tmp_path / "w").glob("where/*.txt"))  # no step ran


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
@pytest.mark.parametrize("workflow", ["hep/zmumu.yaml", "radio/imaging.yaml"])
def test_science_workflows_run_across_nodes(multinode, tmp_path, workflow, engine):
    """The issue's acceptance run: both shipped science workflows (`--preset small`), both engines, a profile
    without `network:`; the reduction's (imaging's) Dask workers ran on both nodes."""
    result = run_portaflow("run", str(ROOT / "workflows" / workflow), "--preset", "small", "--site", str(SITE),
                           "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    network = manifest(tmp_path)["network"]
    [record] = network["dask"].values()
    assert {w["node"] for w in record["workers"].values()} == set(NODES), record
    assert record["scheduler_address"]["address"] in NODES.values(), record
    assert network["driver"] == ({"address": LOGIN, "chosen_by": network["driver"]["chosen_by"]} if engine == "parsl" else None)


# -- portaflow site check ------------------------------------------------------------------------------------------
def site_check(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = run_portaflow("site", "check", str(SITE), "--json", *args, timeout=120)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result, json.loads(result.stdout)


def test_site_check_passes_on_the_nodes(multinode, tmp_path):
    """One probe per partition, each on a compute node, connects back to the login host's bridge address (chosen by
    the run's own rule; the listener on that address only)."""
    result, report = site_check("--workdir", str(tmp_path))
    assert result.returncode == 0 and report["ok"], result.stdout + result.stderr
    assert (report["address"], report["interface"]) == (LOGIN, "pfbr0"), report
    assert report["listener"].startswith(f"{LOGIN}:"), report
    parts = {p["partition"]: p for p in report["partitions"]}
    assert set(parts) == {"multi", "spread"}
    for part in parts.values():
        assert part["job"].isdigit() and part["reachable"] is True and part["host"] in NODES, part
        assert part["queue_wait_s"] is not None and part["queue_wait_s"] < 60, part
    # the comparison with scontrol/sacctmgr ran before the probes, and every item of the true profile holds
    keys = {f["key"] for f in report["findings"]}
    assert {"partitions.multi.max_walltime", "partitions.spread.cores_per_node", "account", "slurm.qos"} <= keys, keys
    assert all(f["verdict"] == "passed" for f in report["findings"]), report["findings"]


WRONG_SITE = ROOT / "tests" / "data" / "sites" / "slurm-local-wrong.yaml"


def test_site_check_without_probes_passes_the_shipped_profile_and_finds_every_wrong_setting(multinode):
    """`--no-probe`: the comparison alone, no job. The shipped slurm-local passes; one deliberately wrong copy of it
    (tests/data/sites/slurm-local-wrong.yaml: every mistake in one profile, so CI pays for one call) has each wrong
    setting reported with the key to change and the site's value. (The unreachable address needs a probe: above.)"""
    start = time.monotonic()
    good = run_portaflow("site", "check", "slurm-local", "--no-probe", "--json", timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    report = json.loads(good.stdout)
    assert report["ok"] and not report["probed"] and report["partitions"] == [], report
    assert {f["verdict"] for f in report["findings"]} == {"passed"} and len(report["findings"]) >= 10, report["findings"]

    result = run_portaflow("site", "check", str(WRONG_SITE), "--no-probe", "--json", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    wrong = {f["key"]: f for f in json.loads(result.stdout)["findings"] if f["verdict"] == "wrong"}
    expected = {
        "partitions.cpu.max_walltime": ("2h", "MaxTime=01:00:00"),
        "partitions.gpu.memory_per_node": ("59.6 GiB", "18.8 GiB (RealMemory)"),
        "partitions.gpu.gpu_models": ("GPU model a100", "its nodes' GPU models: none named (Gres=gpu:2)"),
        "partitions.gpu.qos": ("QOS premium", None),
        "partitions.bigmem": ("partition bigmem", None),
        "partitions.remote.clusters": ("cluster nosuchcluster", None),
        "account": ("account nosuch-account", None),
    }
    assert set(wrong) == set(expected), sorted(wrong)
    for key, (profile, site) in expected.items():
        assert wrong[key]["profile"] == profile and (site is None or wrong[key]["site"] == site), wrong[key]
        assert wrong[key]["text"].startswith(f"wrong: profile says {profile}, site says ") and key in wrong[key]["text"]
    assert "no such partition" in wrong["partitions.bigmem"]["site"] and "nosuch-account" not in wrong["account"]["site"]
    assert "does not answer" in wrong["partitions.remote.clusters"]["site"], wrong["partitions.remote.clusters"]
    assert "Traceback" not in result.stderr
    print(f"site check --no-probe, the true and the wrong profile: {time.monotonic() - start:.1f} s")


def unroutable_interface() -> tuple[str, str] | None:
    """An interface of the login host that is neither loopback nor the nodes' bridge (here eth0): the nodes have no
    route to its address, as compute nodes have none to a login node's public interface."""
    from portaflow.addresses import is_loopback, local_addresses

    for name, ips in sorted(local_addresses().items()):
        for ip in ips:
            if not is_loopback(ip) and not ip.startswith("10.77.0."):
                return name, ip
    return None


@pytest.mark.parametrize("case", ["interface", "loopback"])
def test_site_check_reports_an_address_the_nodes_cannot_reach_quickly(multinode, tmp_path, case):
    """The item a run cannot find for itself: `network.interface` names an interface of the login host that exists and
    has an address (so the static address rule accepts it), and the nodes cannot route to it. A run's workers would
    retry it until the walltime; the check says so in seconds, naming the address and its interface. Loopback (which
    the address rule refuses already) is probed as well and reported both ways."""
    if case == "interface":
        found = unroutable_interface()
        if found is None:
            pytest.skip("this host has no interface besides loopback and the nodes' bridge")
        setting, (interface, address) = f"network.interface={found[0]}", found
    else:
        setting, interface, address = "network.address=127.0.0.1", "lo", "127.0.0.1"
    start = time.monotonic()
    result, report = site_check("--site-set", setting, "--workdir", str(tmp_path))
    elapsed = time.monotonic() - start
    assert result.returncode == 1 and not report["ok"], result.stdout + result.stderr
    assert (report["address"], report["interface"]) == (address, interface), report
    if case == "loopback":
        assert "network.address: 127.0.0.1 is loopback" in report["address_problem"], report
    for part in report["partitions"]:
        assert part["reachable"] is False and part["host"] in NODES, part
        assert part["reach"].startswith(f"{address}:") and f"({interface}) unreachable from {part['host']}" in part["reach"], part
        assert any(p.startswith("network: the driver's address") for p in part["problems"]), part
    assert elapsed < 40, f"took {elapsed:.0f} s"
    print(f"site check with an unreachable {case} address: {elapsed:.1f} s")


def test_site_check_reports_a_refused_submission_and_a_probe_that_never_starts(multinode, tmp_path):
    """An account SLURM refuses: the submission's own message. A probe that stays queued (here held until an hour from
    now): a timeout naming the job and its state, and the job cancelled, within the --timeout asked for."""
    _, refused = site_check("--partition", "multi", "--site-set", "account=nosuch", "--workdir", str(tmp_path / "a"))
    [part] = refused["partitions"]
    assert part["job"] is None and "Invalid account" in part["problems"][0], part
    assert [f["key"] for f in refused["findings"] if f["verdict"] == "wrong"] == ["account"], refused["findings"]  # before sbatch said so
    start = time.monotonic()
    result, queued = site_check("--partition", "multi", "--timeout", "6", "--site-set", 'extra_directives=["--begin=now+1hour"]',
                                "--workdir", str(tmp_path / "b"))
    assert time.monotonic() - start < 30
    [part] = queued["partitions"]
    assert queued["timed_out"] and part["state"] == "PENDING (BeginTime)", part
    assert part["problems"] == [f"timeout: no report within the check's 6 s (--timeout); job {part['job']} was PENDING (BeginTime) (cancelled)"]
    state = multinode.show_job(part["job"])["JobState"]
    assert state == "CANCELLED", state


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_in_allocation_dask_workers_cover_every_node_of_the_step(multinode, tmp_path, engine):
    """`dask.mode: in_allocation` with `nodes: 2`: the step's own job holds both nodes (one task per node; with
    `--ntasks=1` SLURM had shrunk it to one node) and a worker starts on each (srun), not all beside the scheduler.
    Under Snakemake the step runs in a one-node job step (`srun -n1`), whose environment names only its node."""
    workflow = ROOT / "tests" / "data" / "workflows" / "where-allocation.yaml"
    result = run_portaflow("run", str(workflow), "--site", str(SITE), "--site-set", "dask.mode=in_allocation",
                           "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    record = manifest(tmp_path)["network"]["dask"]["survey"]
    assert record["mode"] == "in_allocation", record
    assert {w["node"] for w in record["workers"].values()} == set(NODES), record
    assert all(w["host"] == w["node"] for w in record["workers"].values()), record
    scheduler_node = record["scheduler_host"]["node"]
    assert record["scheduler"].startswith(f"tcp://{NODES[scheduler_node]}:"), record  # reachable from the other node
    assert json.loads((tmp_path / "report.json").read_text())["sum_of_squares"] == sum(i * i for i in range(8))


def kill_jobs_on(node: str) -> None:
    """What a dead node loses: every process in its network namespace but its slurmd (kept for the resume). SLURM's
    DOWN only forgets the job; left alone, its step would run on in the namespace after the test (and keep the
    namespace, and its veth, alive past `cluster.sh down`)."""
    pids = subprocess.run(["ip", "netns", "pids", namespace_of(node)], capture_output=True, text=True, check=False).stdout.split()
    for pid in pids:
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0) != b"slurmd":
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def namespace_of(node: str) -> str:
    return "pf-" + node.removeprefix("pf")  # pfnode1 -> pf-node1 (cluster.sh)


def slurmd_pids(node: str) -> list[int]:
    """The node's slurmd (the one process in its namespace named slurmd)."""
    pids = subprocess.run(["ip", "netns", "pids", namespace_of(node)], capture_output=True, text=True, check=False).stdout.split()
    out = []
    for pid in pids:
        try:
            if os.path.basename(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]) == b"slurmd":
                out.append(int(pid))
        except OSError:
            continue
    return out


def kill_node(node: str) -> None:
    """The node dies, as far as a shared cluster allows: its slurmd stops answering (SIGSTOP, so that it can be
    resumed: the test may not restart the cluster's daemons), every other process in its namespace (the task's job,
    its step, a Parsl worker) is killed, and its namespace is cut off the bridge (the host side of its veth pair
    down). What SLURM cannot learn before SlurmdTimeout (300 s in this cluster) it is told: `scontrol update
    state=down`, as slurmctld itself would do after that timeout."""
    for pid in slurmd_pids(node):
        os.kill(pid, signal.SIGSTOP)
    kill_jobs_on(node)
    subprocess.run(["ip", "link", "set", "pfv" + node.removeprefix("pfnode"), "down"], check=True, timeout=30)


def revive_node(node: str) -> None:
    """Undo kill_node: anything left in the namespace killed, the link up, slurmd continued, the node resumed."""
    kill_jobs_on(node)
    subprocess.run(["ip", "link", "set", "pfv" + node.removeprefix("pfnode"), "up"], check=False, timeout=30)
    for pid in slurmd_pids(node):
        os.kill(pid, signal.SIGCONT)
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=False, timeout=30)


# -- faults --------------------------------------------------------------------------------------------------------
@pytest.mark.slurm_nodes_exclusive  # it takes a node of `multi` down: no other test may have jobs there meanwhile
@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_a_node_lost_mid_task_is_retried_on_the_other_node(multinode, tmp_path, engine):
    """A node dies while a task runs there (`kill_node`: its slurmd stopped, its processes killed, its namespace cut off
    the bridge): SLURM marks it DOWN and ends its job NODE_FAIL; portaflow tries the task again (its `retries`), SLURM
    places it on the other node, and the run ends with the output. How long that took after the node went down is
    printed (tests/slurm/README.md has the numbers).

    SLURM is told with `scontrol update state=drain` then `state=down`: DOWN is what slurmctld itself does once a
    dead node's slurmd has been silent for SlurmdTimeout (300 s here; waiting for it would make this a 6-minute test),
    and the drain keeps it out once its slurmd answers again (ReturnToService=2 would take it back at once). The node
    is revived in a finally, whatever happens."""
    marker = tmp_path / "started"
    argv = [sys.executable, "-m", "portaflow", "run", str(ROOT / "tests" / "data" / "workflows" / "node-loss.yaml"), "--site", str(SITE),
            "--engine", engine, "--workdir", str(tmp_path / "w"), "--param", f"marker={marker}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    node = None
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the task never started"
            time.sleep(0.5)
        node = marker.read_text().split()[0]
        lost_at = time.monotonic()
        kill_node(node)
        for state in ("drain", "down"):  # drained first: with ReturnToService=2 a DOWN node whose slurmd answers is back at once
            subprocess.run(["scontrol", "update", f"nodename={node}", f"state={state}", "reason=portaflow node-loss test"],
                           check=True, timeout=30)
        out, err = proc.communicate(timeout=300)
        recovered = time.monotonic() - lost_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if node:
            revive_node(node)
    assert proc.returncode == 0, out + err
    tries = marker.read_text().split()
    host, finished_on = (tmp_path / "w" / "held.txt").read_text().split()
    assert tries[0] == node and finished_on != node and finished_on in NODES and len(tries) >= 2, (tries, finished_on)
    print(f"{engine}: node {node} lost mid-task; the task ran again on {finished_on} and the run ended {recovered:.0f} s after the loss")


# -- the portability matrix ----------------------------------------------------------------------------------------
def test_matrix_cells_run_on_the_nodes(multinode, tmp_path):
    """The matrix's cells on the multi-node cluster: wordfreq with both engines must really run there (`--must-run`),
    and their outputs agree under each output's comparator. The profile stays a test profile, found by name through
    PORTAFLOW_SITE_PATH: it describes namespaces only tests/slurm/cluster.sh makes, and as a shipped profile the
    default matrix (.ci/run) would run every workflow on it (12 more run cells)."""
    result = run_portaflow("matrix", "--workflows", str(ROOT / "workflows" / "examples" / "wordfreq.yaml"), "--sites", "slurm-multinode",
                           "--must-run", "slurm-multinode", "--jobs", "2", "-o", str(tmp_path / "matrix"),
                           env={"PORTAFLOW_SITE_PATH": str(SITE.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "matrix" / "matrix.json").read_text())
    cells = {(c["site"], c["engine"]): c["status"] for c in report["cells"]}
    assert cells == {("slurm-multinode", "parsl"): "passed", ("slurm-multinode", "snakemake"): "passed"}, report["cells"]
    assert report["ok"] and not report["disagreements"], report


def test_a_dask_worker_lost_mid_reduction_gives_the_same_result(multinode, tmp_path):
    """`dask.mode: jobs`: one worker's job is cancelled while the reduction runs (its node's process is killed by
    SLURM); Dask reruns the lost tasks on the other worker and the result is the undisturbed one. The time from the
    loss to the end of the run is printed."""
    argv = [sys.executable, "-m", "portaflow", "run", str(ROOT / "tests" / "data" / "workflows" / "worker-loss.yaml"), "--site",
            str(SITE), "--engine", "snakemake", "--workdir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, victim = time.monotonic() + 240, None
        while victim is None:
            assert proc.poll() is None and time.monotonic() < deadline, "the Dask workers never ran"
            time.sleep(0.5)
            # this run's worker jobs: on `spread` (the profile's worker partition, which only these tests use), with the
            # run's comment (portaflow:<run id>, the run directory's name)
            runs = [p.name for p in (tmp_path / ".portaflow" / "runs").glob("2*")] if (tmp_path / ".portaflow" / "runs").exists() else []
            queue = subprocess.run(["squeue", "--noheader", "--partition=spread", "--name=portaflow-dask-cpu", "--states=RUNNING",
                                    "--format=%i %N %k"], capture_output=True, text=True, timeout=30).stdout.split("\n")
            mine = [line.split() for line in queue if line.strip() and any(line.split()[-1] == f"portaflow:{r}" for r in runs)]
            # both workers up and the reduction under way (its tasks take 20 s on two workers)
            if len(mine) == 2 and (tmp_path / ".portaflow").exists() and list((tmp_path / ".portaflow" / "runs").glob("*/dask/survey.json")):
                time.sleep(3)
                victim = mine[0]
        lost_at = time.monotonic()
        subprocess.run(["scancel", victim[0]], check=True, timeout=30)
        out, err = proc.communicate(timeout=240)
        recovered = time.monotonic() - lost_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert json.loads((tmp_path / "report.json").read_text())["sum_of_squares"] == sum(i * i for i in range(40))
    print(f"Dask worker job {victim[0]} on {victim[1]} cancelled mid-reduction; the run ended {recovered:.0f} s later")
