"""The run report's parts that need no run: the job shell's note of each try, sacct's accounting, escaping, finding a run."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portaflow.errors import InputError
from portaflow.report import find_run, render_report
from portaflow.schedulers.context import NOW, read_tries, usage_line, usage_path
from portaflow.schedulers.slurm import SACCT_FIELDS, parse_sacct


def test_the_job_shell_notes_each_try_with_its_cpu_time(tmp_path):
    """The lines shell_line ends with, run by bash twice (a failing try that burns CPU, then a quick one)."""
    note = usage_line(usage_path(tmp_path, "t"))
    (tmp_path / "logs").mkdir()
    for body in ("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3", "true"):
        script = (f"set -eo pipefail\npf_t0={NOW}\nbash -c '{body}' &\npf_step=$!\npf_status=0\n"
                  f"wait \"$pf_step\" || pf_status=$?\n{note}\ntest \"$pf_status\" -eq 0 || exit \"$pf_status\"\n")
        subprocess.run(["bash", "-c", script], check=False, timeout=60)
    first, second = read_tries(tmp_path, "t")
    assert (first["exit"], second["exit"]) == (3, 0)
    assert first["cpu_s"] > 0.1 and second["cpu_s"] < first["cpu_s"]  # the child's CPU time, counted by `times`
    assert first["started"] < first["ended"] <= second["started"] < second["ended"]


def test_a_note_that_cannot_be_written_does_not_fail_the_step(tmp_path):
    script = f"set -eo pipefail\npf_t0={NOW}\npf_status=0\n{usage_line(tmp_path / 'missing' / 'x.usage')}\necho fine"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "fine\n", "")


SACCT = """\
1024|COMPLETED|2026-12-03T19:51:30|2026-12-03T19:51:34|2026-12-03T19:51:46|12|00:10.444|2|1G|
1024.batch|COMPLETED|2026-12-03T19:51:30|2026-12-03T19:51:34|2026-12-03T19:51:46|12|00:03.439|2||381256K
1024.0|COMPLETED|2026-12-03T19:51:34|2026-12-03T19:51:34|2026-12-03T19:51:44|10|00:07.004|2||102400K
1025|CANCELLED by 0|2026-12-03T19:51:37|None|2026-12-03T19:51:43|0|00:00:00|1|2000Mc|
"""


def test_sacct_rows_become_one_usage_per_job():
    """Rows as Debian's slurm-wlm 22.05 prints them (`sacct --parsable2`, SACCT_FIELDS); ReqMem per CPU (`c`) as older
    versions print it."""
    assert SACCT_FIELDS[0] == "JobID" and len(SACCT.splitlines()[0].split("|")) == len(SACCT_FIELDS)
    usage = parse_sacct(SACCT)
    assert set(usage) == {"1024", "1025"}
    job = usage["1024"]
    assert (job.started, job.elapsed_s, job.cpu_s, job.cores, job.memory_mib) == ("2026-12-03T19:51:34", 12.0, 10.444, 2, 1024.0)
    assert job.max_rss_mib == pytest.approx(381256 / 1024)  # the largest of its steps
    assert job.cpu_efficiency == pytest.approx(10.444 / 24) and job.memory_efficiency == pytest.approx(381256 / 1024 / 1024)
    cancelled = usage["1025"]
    assert (cancelled.state, cancelled.started, cancelled.memory_mib, cancelled.cpu_efficiency) == ("CANCELLED", None, 2000.0, None)


def _run_dir(workdir: Path, run_id: str, **task: object) -> Path:
    run_dir = workdir / ".portaflow" / "runs" / run_id
    (run_dir / "logs").mkdir(parents=True)
    manifest = {"run_id": run_id, "status": "failed", "workflow": "w<b>f</b>", "site": "local", "scheduler": "local",
                "engine": "parsl", "workdir": str(workdir), "started": "2026-12-03T10:00:00", "finished": "2026-12-03T10:00:09",
                "parameters": {"msg": "<script>alert(1)</script>"}, "outputs": {},
                "tasks": {"t": {"step": "s", "display": "s[x=<img src=x onerror=alert(2)>]", "status": "failed", "depends": [],
                                "error": "the command failed: </pre><script>alert(3)</script>",
                                "tries": [{"started": "2026-12-03T10:00:01", "ended": "2026-12-03T10:00:02", "exit": 7, "cpu_s": 0.5}],
                                **task}}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "logs" / "t.log").write_text("step said </pre><script>alert(4)</script>\n")
    return run_dir


def test_every_value_from_the_run_is_escaped(tmp_path):
    page = render_report(_run_dir(tmp_path, "20261203-100000-parsl-0001"), tmp_path / "r.html")
    assert page.count("<script") == 2 and "<img src=x" not in page and "<b>f</b>" not in page
    for n in (1, 3, 4):
        assert f"&lt;script&gt;alert({n})&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_the_newest_run_is_the_default_and_a_run_is_found_by_id(tmp_path):
    old = _run_dir(tmp_path, "20261203-100000-parsl-0001")
    new = _run_dir(tmp_path, "20261203-110000-snakemake-0002")
    assert find_run(tmp_path, None) == new and find_run(tmp_path, "20261203-10") == old and find_run(tmp_path, str(old)) == old
    with pytest.raises(InputError, match="no run of that id"):
        find_run(tmp_path, "2025")
    with pytest.raises(InputError, match="no runs in"):
        find_run(tmp_path / "elsewhere", None)


def test_the_local_step_launcher_notes_peak_memory_and_keeps_the_status(tmp_path):
    """The local adapter's job shell runs the step under runtime.peak: a step whose process (a grandchild, through
    `timeout` and `bash -c`, as shell_line runs it) holds 120 MiB and exits 3 gives that status and a note of about
    120 MiB, which read_tries attaches to the try the shell notes next; the report's memory efficiency follows."""
    from portaflow.report import TaskView, Try
    from portaflow.runtime.peak import ENTRY

    (tmp_path / "logs").mkdir()
    note_path = usage_path(tmp_path, "t")
    step = "python3 -c 'x = bytearray(120 * 2**20); x[::4096] = bytes(len(x[::4096])); import sys; sys.exit(3)'"
    script = (f"pf_t0={NOW}\n{sys.executable} -m {ENTRY} {note_path} -- timeout 60 bash -c \"{step}\" &\npf_step=$!\npf_status=0\n"
              f"wait \"$pf_step\" || pf_status=$?\n{usage_line(note_path)}\nexit \"$pf_status\"\n")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    (noted,) = read_tries(tmp_path, "t")
    assert noted["exit"] == 3 and 120 <= noted["max_rss_mib"] < 200, noted
    started = dt.datetime(2026, 12, 3, 10, 0, 0)
    view = TaskView("t", "s", "s", "ran", [], cores=1, memory_mib=240,
                    tries=[Try(started, started + dt.timedelta(seconds=2), 0, 1.0, noted["max_rss_mib"])])
    cpu, memory, where = view.efficiency()
    assert cpu == "50%" and memory == f"{100 * noted['max_rss_mib'] / 240:.0f}%" and "peak resident memory" in where


def test_peak_passes_signals_on_to_the_step(tmp_path):
    """An engine cancelling the task: the job's shell sends SIGTERM to runtime.peak, which passes it on; the step ends
    by it (143) and the note is still written."""
    from portaflow.runtime.peak import ENTRY

    proc = subprocess.Popen([sys.executable, "-m", ENTRY, str(tmp_path / "note"), "--", "sleep", "30"])
    time.sleep(1.0)
    proc.terminate()
    assert proc.wait(timeout=20) == 128 + 15
    assert (tmp_path / "note").read_text().startswith("rss ")


def test_condor_history_json_becomes_one_usage_per_job():
    """condor_history -json (HTCondor manual, condor_history(1): `-json`, `-attributes`, `-constraint`; attributes from
    "Job ClassAd Attributes": RemoteUserCpu/RemoteSysCpu seconds, ResidentSetSize_RAW KiB, RequestMemory MiB, times in
    seconds since the epoch) prints a JSON array of job ads. The ads here are written by HTCondor's own ClassAd library
    (classad2's printJson, the serialiser the tools use), one with RequestMemory as an expression, as submit files may
    give it. A Parsl job is recorded as `cluster.proc`, the Snakemake plugin's as the cluster id."""
    import classad2

    from portaflow.schedulers.htcondor import CONDOR_HISTORY_ATTRIBUTES, parse_condor_history

    t0 = 1796342400
    ads = []
    for cluster, proc, user, rss, memory in ((71, 0, 30.0, 262144, 1024), (72, 0, 5.0, 51200, 2048), (72, 1, 7.0, 102400, 2048),
                                             (73, 0, 1.0, 1024, None)):
        ad = classad2.ClassAd({"ClusterId": cluster, "ProcId": proc, "JobStatus": 4, "QDate": t0, "JobCurrentStartDate": t0 + 10,
                               "CompletionDate": t0 + 30, "RemoteWallClockTime": 20.0, "RemoteUserCpu": user, "RemoteSysCpu": 2.0,
                               "RequestCpus": 2, "ResidentSetSize_RAW": rss})
        ad["RequestMemory"] = memory if memory else classad2.ExprTree("ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 1024)")
        ads.append(ad)
    assert set(ads[0].keys()) <= set(CONDOR_HISTORY_ATTRIBUTES)
    text = "[\n" + ",\n".join(ad.printJson() for ad in ads) + "\n]\n"
    usage = parse_condor_history(text, ["71.0", "72", "73.0", "99.0"])
    assert set(usage) == {"71.0", "72", "73.0"}  # 99: not in the history (still queued, or unknown)
    job = usage["71.0"]
    assert (job.state, job.cores, job.elapsed_s, job.cpu_s, job.memory_mib) == ("COMPLETED", 2, 20.0, 32.0, 1024.0)
    assert job.max_rss_mib == 256.0 and job.cpu_efficiency == pytest.approx(32 / 40) and job.memory_efficiency == 0.25
    assert job.started == dt.datetime.fromtimestamp(t0 + 10).isoformat(timespec="seconds")
    cluster = usage["72"]  # both of its jobs: CPU and wall time summed, the larger peak
    assert (cluster.cpu_s, cluster.elapsed_s, cluster.max_rss_mib, cluster.memory_mib) == (16.0, 40.0, 100.0, 2048.0)
    assert usage["73.0"].memory_mib is None and usage["73.0"].memory_efficiency is None  # an expression: not a figure
    assert parse_condor_history("", ["71.0"]) == {} and parse_condor_history("not json", ["71.0"]) == {}


def test_pods_as_the_api_server_describes_them_become_one_usage_per_job():
    """Pods as the Kubernetes API returns them (API reference, Pod v1: metadata.creationTimestamp, spec.containers[]
    .resources.requests, status.phase, status.containerStatuses[].state.terminated.startedAt/finishedAt), made with the
    official client's models and serialised as the client sends them (`sanitize_for_serialization`, the shape of
    `kubectl get pod -o json`): a Snakemake Job's pods by their `job-name` label (the last one counts: a Job retries in a
    new pod), a Parsl pod by its name. No CPU time or peak memory: Kubernetes keeps none for a finished pod."""
    from kubernetes import client

    from portaflow.schedulers.kubernetes import parse_pod_accounting

    utc = dt.UTC
    t0 = dt.datetime(2026, 12, 3, 10, 0, 0, tzinfo=utc)

    def pod(name: str, job: str | None, created: int, started: int | None, finished: int | None, phase: str) -> dict:
        state = client.V1ContainerState(terminated=client.V1ContainerStateTerminated(
            exit_code=0 if phase == "Succeeded" else 1, started_at=t0 + dt.timedelta(seconds=started),
            finished_at=t0 + dt.timedelta(seconds=finished))) if finished is not None else client.V1ContainerState(
            running=client.V1ContainerStateRunning(started_at=t0 + dt.timedelta(seconds=started)))
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={"job-name": job} if job else {}, creation_timestamp=t0 + dt.timedelta(seconds=created)),
            spec=client.V1PodSpec(containers=[client.V1Container(name="step", image="x", resources=client.V1ResourceRequirements(
                requests={"cpu": "1500m", "memory": "1536Mi"}))]),
            status=client.V1PodStatus(phase=phase, container_statuses=[client.V1ContainerStatus(
                name="step", image="x", image_id="", ready=False, restart_count=0, state=state)]))
        return client.ApiClient().sanitize_for_serialization(body)

    pods = [pod("snakejob-1-abcde", "snakejob-1", 0, 5, 20, "Failed"), pod("snakejob-1-fghij", "snakejob-1", 30, 32, 62, "Succeeded"),
            pod("parsl-block-0", None, 0, 3, None, "Running")]
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"].endswith(("Z", "+00:00"))
    usage = parse_pod_accounting(pods, ["snakejob-1", "parsl-block-0", "gone"])
    assert set(usage) == {"snakejob-1", "parsl-block-0"}
    job = usage["snakejob-1"]
    local = (t0 + dt.timedelta(seconds=32)).astimezone().replace(tzinfo=None).isoformat(timespec="seconds")
    assert (job.state, job.started, job.elapsed_s, job.cores, job.memory_mib) == ("COMPLETED", local, 30.0, 2, 1536.0)
    assert job.cpu_s is None and job.max_rss_mib is None and job.cpu_efficiency is None
    running = usage["parsl-block-0"]
    assert (running.state, running.ended, running.elapsed_s) == ("RUNNING", None, None) and running.started is not None
