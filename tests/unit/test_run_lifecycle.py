"""The run lifecycle without an engine: why each task is stale, --until/--force, runs and clean, --cores/--jobs, exit codes.

Tasks are "run" by writing their outputs and recording them as the driver does, so these tests take about a second."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from portaflow import cli as cli_module, driver
from portaflow.driver import Selection, tasks_to_run
from portaflow.engines.state import LOCK_FILE, StateStore, WorkdirLock, produced_inputs
from portaflow.errors import InputError, Interrupted
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.spec.loading import load_site, load_workflow

from testlib import ROOT

CHAIN = ROOT / "tests" / "data" / "workflows" / "chain.yaml"


def planned(params: dict | None = None, site_overrides: dict | None = None):
    loaded = load_site("local", site_overrides or {}, environ={})
    return make_plan(load_workflow(CHAIN).workflow, loaded.site, params or {}), loaded


def pretend_ran(plan, loaded, workdir: Path, only: set[str] | None = None, content: str = "x") -> None:
    """Write the tasks' outputs and record them, as the driver records a task its engine reports finished."""
    stale = tasks_to_run(plan, loaded, workdir, images={})
    store = StateStore(workdir)
    for task in plan.tasks:
        if only is None or task.step in only:
            for path in task.output_paths():
                (workdir / path).write_text(f"{content} {task.id}\n")
            store.write(task, stale.sigs[task.id], produced_inputs(plan, store, task))


def reasons(plan, loaded, workdir: Path, selection: Selection | None = None) -> dict[str, str]:
    stale = tasks_to_run(plan, loaded, workdir, images={}, selection=selection or Selection())
    return {t.step: stale.reasons[t.id] for t in stale.todo}


def test_a_dry_run_says_which_part_of_a_signature_changed(tmp_path):
    plan, loaded = planned()
    assert reasons(plan, loaded, tmp_path) == {
        "first": "no record of an earlier run", "alone": "no record of an earlier run",
        "middle": "no record of an earlier run; upstream task(s) rerun: first",
        "last": "no record of an earlier run; upstream task(s) rerun: middle"}
    pretend_ran(plan, loaded, tmp_path)
    assert reasons(plan, loaded, tmp_path) == {}
    changed, _ = planned({"word": "bye"})
    assert reasons(changed, loaded, tmp_path) == {"first": "signature changed: command",
                                                 "middle": "upstream task(s) rerun: first", "last": "upstream task(s) rerun: middle"}
    plan_env, loaded_env = planned(site_overrides={"environment.env.PF_MODE": "fast"})
    assert set(reasons(plan_env, loaded_env, tmp_path).values()) >= {"signature changed: environment"}
    (tmp_path / "alone.txt").unlink()
    (tmp_path / "last.txt").write_text("edited by hand\n")
    assert reasons(plan, loaded, tmp_path) == {"alone": "output alone.txt is missing", "last": "output last.txt was changed after it was recorded"}


def test_a_producer_that_reran_alone_makes_its_readers_stale_and_old_records_still_count(tmp_path):
    plan, loaded = planned()
    pretend_ran(plan, loaded, tmp_path)
    pretend_ran(plan, loaded, tmp_path, only={"first"}, content="different")  # e.g. --force first --until first
    assert reasons(plan, loaded, tmp_path) == {"middle": "input first.txt was rewritten after this task read it",
                                              "last": "upstream task(s) rerun: middle"}
    pretend_ran(plan, loaded, tmp_path)
    record = tmp_path / ".portaflow" / "state" / "first.json"  # a record written before the parts were kept
    old = json.loads(record.read_text())
    del old["parts"]
    record.write_text(json.dumps(old))
    assert reasons(plan, loaded, tmp_path) == {}, "an old record with the same signature must stay valid"
    changed, _ = planned({"word": "bye"})
    assert reasons(changed, loaded, tmp_path)["first"].startswith("signature changed (its command, inputs, image or environment; "
                                                                  "the record does not say which)")


def test_until_runs_only_what_the_targets_need_and_force_reruns_downstream(tmp_path):
    plan, loaded = planned()
    stale = tasks_to_run(plan, loaded, tmp_path, images={}, selection=Selection(until=("middle",)))
    assert [t.step for t in stale.todo] == ["first", "middle"] and {t.step for t in stale.not_requested} == {"alone", "last"}
    stale = tasks_to_run(plan, loaded, tmp_path, images={}, selection=Selection(until=("alone.txt", "./first.txt")))
    assert [t.step for t in stale.todo] == ["first", "alone"]
    pretend_ran(plan, loaded, tmp_path)
    assert reasons(plan, loaded, tmp_path, Selection(force=("middle",))) == {
        "middle": "forced (--force)", "last": "upstream task(s) rerun: middle"}
    assert reasons(plan, loaded, tmp_path, Selection(force=("middle",), until=("middle",))) == {"middle": "forced (--force)"}
    assert len(reasons(plan, loaded, tmp_path, Selection(force_all=True))) == 4
    with pytest.raises(InputError) as info:
        tasks_to_run(plan, loaded, tmp_path, images={}, selection=Selection(until=("midle",)))
    assert info.value.exit_code == 2
    assert "--until midle: workflow chain has no step, task or output of that name (steps: alone, first, last, middle" in str(info.value)


def test_a_run_with_nothing_to_do_makes_no_run_directory(tmp_path):
    plan, loaded = planned()
    pretend_ran(plan, loaded, tmp_path)
    result = driver.run(plan, loaded, "snakemake", tmp_path)
    assert result.run_dir is None and result.ran == [] and len(result.skipped) == 4
    assert not (tmp_path / ".portaflow" / "runs").exists()
    assert os.environ.get("PORTAFLOW_RUN_ID") is None, "the run's environment outlived it"


def write_run(workdir: Path, run_id: str, status: str, tasks: dict[str, str]) -> Path:
    run_dir = workdir / ".portaflow" / "runs" / run_id
    run_dir.mkdir(parents=True)
    manifest = {"run_id": run_id, "status": status, "engine": "parsl", "site": "local", "started": "2026-01-02T10:00:00",
                "finished": None if status == "running" else "2026-01-02T10:01:05",
                "tasks": {name: {"status": state} for name, state in tasks.items()}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def test_runs_lists_states_and_clean_keeps_the_newest_and_the_running_one(tmp_path):
    running = write_run(tmp_path, "20260101-000000-parsl-aaaa", "running", {"a": "pending"})
    done = write_run(tmp_path, "20260102-000000-parsl-bbbb", "succeeded", {"a": "ran", "b": "ran", "c": "up to date"})
    killed = write_run(tmp_path, "20260103-000000-parsl-cccc", "running", {"a": "ran", "b": "pending"})
    (tmp_path / ".portaflow" / "runs" / "latest").symlink_to(done.name)
    lock = WorkdirLock(tmp_path)
    lock.acquire(running.name)
    try:
        runs = driver.list_runs(tmp_path)
        assert [(r.run_id, r.state) for r in runs] == [(running.name, "running"), (done.name, "succeeded"), (killed.name, "killed")]
        assert runs[1].counts == {"ran": 2, "up to date": 1} and runs[1].duration_s == 65
        result = CliRunner().invoke(cli_module.cli, ["runs", "-w", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert "1m05s" in result.output and "2 ran, 1 up to date" in result.output and "killed" in result.output
        assert driver.clean_runs(tmp_path, keep=1, dry_run=True) == [done]
        result = CliRunner().invoke(cli_module.cli, ["clean", "-w", str(tmp_path), "--keep", "1"])
        assert result.exit_code == 0, result.output
        assert "1 run record(s) removed" in result.output
    finally:
        lock.release()
    assert running.exists() and killed.exists() and not done.exists()
    assert os.readlink(tmp_path / ".portaflow" / "runs" / "latest") == killed.name
    assert (tmp_path / LOCK_FILE).exists()


def test_cores_and_jobs_are_local_shortcuts(tmp_path):
    _, loaded, plan = cli_module._load(str(CHAIN), "local", (), (), None, None, cores=3, jobs=2)
    assert loaded.site.partitions["local"].cores_per_node == 3 and loaded.site.polling.max_queued_jobs == 2
    scheduler = adapter_for(loaded)
    ctx = RunContext(plan, loaded, tmp_path, tmp_path, plan.tasks, scheduler)
    assert scheduler.parsl_executor_options(ctx, plan.tasks[:1])["max_workers_per_node"] == 2
    profile = scheduler.snakemake_profile(ctx)
    assert profile["cores"] == 3 and "portaflow_tasks=2" in profile["resources"]
    assert scheduler.snakemake_resources(ctx, plan.tasks[0])["portaflow_tasks"] == 1
    with pytest.raises(InputError) as info:
        cli_module._load(str(CHAIN), "slurm-local", (), (), None, None, cores=2)
    assert info.value.exit_code == 2 and "--cores: for the local site only; site slurm-local (scheduler slurm)" in str(info.value)


def test_signals_exit_128_plus_their_number_and_a_signal_waits_for_a_safe_point(tmp_path):
    assert (Interrupted(signal.SIGINT).exit_code, Interrupted(signal.SIGTERM).exit_code, Interrupted(signal.SIGHUP).exit_code) == (130, 143, 129)

    @click.group(cls=cli_module.PortaflowGroup)
    def group() -> None:
        pass

    @group.command()
    def stopped() -> None:
        raise Interrupted(signal.SIGTERM)

    @group.command()
    def ctrl_c() -> None:
        raise KeyboardInterrupt

    assert CliRunner().invoke(group, ["stopped"]).exit_code == 143
    assert CliRunner().invoke(group, ["ctrl-c"]).exit_code == 130
    plan, loaded = planned()
    ctx = RunContext(plan, loaded, tmp_path, tmp_path, plan.tasks, adapter_for(loaded))
    handler = driver._stop_handler(ctx)
    handler(signal.SIGTERM, None)  # the first signal only asks
    assert ctx.stop_signal == signal.SIGTERM
    with pytest.raises(Interrupted) as info:
        ctx.raise_if_stopped()
    assert info.value.exit_code == 143
    with pytest.raises(Interrupted):  # a second one does not wait
        handler(signal.SIGINT, None)


def test_verbosity_after_the_subcommand_and_dry_run_reasons(tmp_path):
    result = CliRunner().invoke(cli_module.cli, ["run", str(CHAIN), "-n", "-w", str(tmp_path), "--until", "middle", "-v"])
    assert result.exit_code == 0, result.output
    assert "  middle: no record of an earlier run; upstream task(s) rerun: first" in result.output
    assert "dry run: 2 of 4 task(s) would run on local with parsl; 2 stale task(s) not needed by the targets" in result.output
    assert "not requested" in result.output
    result = CliRunner().invoke(cli_module.cli, ["run", str(CHAIN), "-n", "-w", str(tmp_path), "-q", "-v"])
    assert result.exit_code == 2 and "cannot be combined" in result.output


KILLED_DRIVER = """
import json, os, socket, subprocess, time
from portaflow.engines.leftovers import this_process
env = {**os.environ, "PORTAFLOW_RUN_ID": "run-killed", "SPT_NOENV": "1"}
kids = [subprocess.Popen(["sleep", "61"], env=env),
        subprocess.Popen(["bash", "-c", "sleep 62 & wait"], env=env, process_group=0),
        subprocess.Popen(["sleep", "63"], env={**env, "PORTAFLOW_RUN_ID": "run-other"}),
        subprocess.Popen(["sleep", "64"], env=env, start_new_session=True)]
print(json.dumps({"run_id": "run-killed", "pid": os.getpid(), "host": socket.gethostname(), **this_process(),
                  "kids": [k.pid for k in kids]}), flush=True)
time.sleep(120)
"""


def test_a_killed_runs_processes_are_found_by_run_session_and_start_and_stopped(caplog):
    """What a driver killed with -9 left: its run's processes in its session, also in process groups of their own; not
    another run's, and not a process in a session of its own (as a batch scheduler's job on this host is)."""
    import subprocess
    import sys
    import time

    from portaflow.engines.leftovers import find_leftovers, stop_previous_run

    proc = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.stdout is not None
    holder = json.loads(proc.stdout.readline())
    kids = holder.pop("kids")
    try:
        time.sleep(0.5)  # bash has started its sleep
        proc.kill()
        proc.wait()
        found = {p.pid: p.command for p in find_leftovers(holder)}
        assert kids[0] in found and kids[1] in found and kids[2] not in found and kids[3] not in found, found
        assert sorted(found.values()) == ["bash -c sleep 62 & wait", "sleep 61", "sleep 62"]
        assert find_leftovers({**holder, "host": "elsewhere"}) == [] and find_leftovers({**holder, "boot_id": "another"}) == []
        assert find_leftovers({**holder, "start_ticks": 10**12}) == [], "a process older than the driver is never its"
        with caplog.at_level("WARNING", logger="portaflow.engines.leftovers"):
            stopped = stop_previous_run(holder, grace_s=5)
        assert {p.pid for p in stopped} == set(found)
        assert "run run-killed (killed) left 3 process(es) running on this host; stopping them" in caplog.text
        assert "stopped 3 process(es) of run run-killed" in caplog.text
        assert find_leftovers(holder) == []
        for pid in kids[2:]:
            os.kill(pid, 0)  # still running: not the killed run's
    finally:
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_an_unknown_target_is_bad_input_and_touches_nothing(tmp_path):
    result = CliRunner().invoke(cli_module.cli, ["run", str(CHAIN), "-w", str(tmp_path / "w"), "last", "--force", "nope"])
    assert result.exit_code == 2 and "--force nope: workflow chain has no step, task or output of that name" in result.output
    assert not (tmp_path / "w").exists()


def test_the_words_for_a_task_that_never_ran(tmp_path):
    from portaflow.engines.base import not_run_message

    plan, loaded = planned()
    ctx = RunContext(plan, loaded, tmp_path, tmp_path, plan.tasks, adapter_for(loaded), keep_going=False)
    by_step = {t.step: t for t in plan.tasks}
    assert not_run_message(ctx, by_step["last"], {"first"}, True) == "not run: a task it depends on failed"
    assert not_run_message(ctx, by_step["alone"], {"first"}, True) == "not started: the run stopped at its first failure (--fail-fast)"
    assert not_run_message(ctx, by_step["alone"], {"first"}, False) == "not run: the engine stopped before it"


def test_a_run_killed_with_9_is_shown_with_the_tasks_it_recorded(tmp_path):
    """Issue 14: its manifest was written `running`/`pending` when it started; `portaflow runs` (and the rerun, which
    saves it) reads the task records: a task that run recorded `ran`, the others `not run`, the run `killed`."""
    killed = write_run(tmp_path, "20260103-000000-parsl-cccc", "running", {"a": "pending", "b": "pending", "c": "pending", "d": "up to date"})
    state = tmp_path / ".portaflow" / "state"
    state.mkdir(parents=True)
    (state / "a.json").write_text(json.dumps({"signature": "s", "run": killed.name, "outputs": {"a.txt": {"sha256": "ab" * 32}}}))
    (state / "b.json").write_text(json.dumps({"signature": "s", "run": "20260101-000000-parsl-aaaa", "outputs": {}}))
    [run] = driver.list_runs(tmp_path)
    assert run.state == "killed" and run.counts == {"ran": 1, "not run": 2, "up to date": 1}
    assert json.loads((killed / "manifest.json").read_text())["status"] == "running", "listing runs wrote the manifest"
    driver.settle_killed_run(tmp_path, killed.name)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "killed"
    assert {t: s["status"] for t, s in manifest["tasks"].items()} == {"a": "ran", "b": "not run", "c": "not run", "d": "up to date"}
    assert manifest["outputs"] == {"a.txt": {"sha256": "ab" * 32, "task": "a"}}
    assert driver.settle_killed_run(tmp_path, killed.name) is None  # settled once
