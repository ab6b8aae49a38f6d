"""End to end on the local site, through the real `portaflow` command, with both engines."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from portaflow.compare import compare_workdirs
from portaflow.plan import make_plan
from portaflow.spec.loading import load_site, load_workflow

import cratecheck
from testlib import ROOT, WORKFLOWS, run_portaflow

ENGINES = ["parsl", "snakemake"]
WORDFREQ = WORKFLOWS / "examples" / "wordfreq.yaml"
DATA = ROOT / "tests" / "data" / "workflows"


def run(workflow: Path, workdir: Path, engine: str, *extra: str, env: dict[str, str] | None = None):
    result = run_portaflow("run", str(workflow), "--engine", engine, "--workdir", str(workdir), *extra, env=env)
    return result


def manifest(workdir: Path) -> dict:
    return json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())


def ran(workdir: Path) -> set[str]:
    return {t for t, info in manifest(workdir)["tasks"].items() if info["status"] == "ran"}


@pytest.fixture(scope="module")
def wordfreq_runs(tmp_path_factory):
    """wordfreq run once with each engine (module-scoped: the runs are the slow part)."""
    out = {}
    for engine in ENGINES:
        workdir = tmp_path_factory.mktemp(engine)
        result = run(WORDFREQ, workdir, engine)
        assert result.returncode == 0, result.stdout + result.stderr
        out[engine] = workdir
    return out


@pytest.mark.xdist_group("local-wordfreq")  # the module's two runs, once
def test_both_engines_give_identical_outputs(wordfreq_runs):
    parsl_dir, smk_dir = wordfreq_runs["parsl"], wordfreq_runs["snakemake"]
    m_parsl, m_smk = manifest(parsl_dir), manifest(smk_dir)
    assert set(m_parsl["outputs"]) == set(m_smk["outputs"]) and len(m_parsl["outputs"]) == 7
    plan = make_plan(load_workflow(WORDFREQ).workflow, load_site("local", environ={}).site)
    verdicts = compare_workdirs(plan, parsl_dir, smk_dir)
    assert len(verdicts) == 7 and all(v.same for _, v in verdicts), [(p, v.detail) for p, v in verdicts if not v.same]
    # Outputs here are deterministic, so even the digests agree.
    assert {p: o["sha256"] for p, o in m_parsl["outputs"].items()} == {p: o["sha256"] for p, o in m_smk["outputs"].items()}
    table = json.loads((parsl_dir / "results" / "top_words.json").read_text())
    assert table["shards"] == 3 and table["total_words"] == 3 * 2000


@pytest.mark.xdist_group("local-wordfreq")
def test_run_directory_holds_manifest_logs_profile(wordfreq_runs):
    for engine, workdir in wordfreq_runs.items():
        run_dir = (workdir / ".portaflow" / "runs" / "latest").resolve()
        m = manifest(workdir)
        assert m["engine"] == engine and m["site"] == "local" and m["status"] == "succeeded"
        assert {"python", "portaflow", "parsl", "snakemake", "dask"} <= set(m["tools"])
        assert (run_dir / "site.yaml").read_text().count("scheduler: local") == 1
        assert len(list((run_dir / "logs").glob("*.log"))) == 7
        rendered = run_dir / "rendered"
        assert (rendered / "Snakefile").exists() if engine == "snakemake" else (rendered / "parsl_config.txt").exists()


@pytest.mark.xdist_group("local-wordfreq")
def test_run_crates_pass_roc_validator(wordfreq_runs):
    """Issue 19: each engine's run writes an RO-Crate that roc-validator passes as a Provenance Run Crate (REQUIRED;
    the Parsl run's also RECOMMENDED, but for what portaflow cannot know: cratecheck.UNMET_RECOMMENDATIONS), whose
    tasks carry the engine's start and end within the run's."""
    for engine, workdir in wordfreq_runs.items():
        run_dir = (workdir / ".portaflow" / "runs" / "latest").resolve()
        passed, issues = cratecheck.validate(run_dir, "RECOMMENDED" if engine == "parsl" else "REQUIRED")
        assert not [i for i in issues if i.severity == "REQUIRED"], issues
        assert {i.check for i in issues} <= set(cratecheck.UNMET_RECOMMENDATIONS), issues
        m = manifest(workdir)
        start, end = dt.datetime.fromisoformat(m["started"]).astimezone(), dt.datetime.fromisoformat(m["finished"]).astimezone()
        graph = {e["@id"]: e for e in json.loads((run_dir / "ro-crate-metadata.json").read_text())["@graph"]}
        actions = [e for e in graph.values() if e["@type"] == "CreateAction" and e["@id"].startswith("#task/")]
        assert len(actions) == 7 and all(a["actionStatus"].endswith("CompletedActionStatus") for a in actions)
        for action in actions:  # the run's times have whole seconds
            began, ended = dt.datetime.fromisoformat(action["startTime"]), dt.datetime.fromisoformat(action["endTime"])
            assert start - dt.timedelta(seconds=1) <= began <= ended <= end + dt.timedelta(seconds=1), (engine, action)


@pytest.mark.xdist_group("local-wordfreq")
@pytest.mark.parametrize("engine", ENGINES)
def test_rerun_recomputes_nothing_and_param_change_only_downstream(wordfreq_runs, engine):
    workdir = wordfreq_runs[engine]
    runs = sorted(os.listdir(workdir / ".portaflow" / "runs"))
    result = run(WORDFREQ, workdir, engine)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert sorted(os.listdir(workdir / ".portaflow" / "runs")) == runs, "a run with nothing to do made a run directory"
    # `top` only enters the merge step.
    result = run(WORDFREQ, workdir, engine, "--param", "top=3")
    assert result.returncode == 0, result.stderr
    assert ran(workdir) == {"merge"}
    assert len(json.loads((workdir / "results" / "top_words.json").read_text())["top"]) == 3
    # A file edited by hand is stale: its task and everything downstream reruns.
    (workdir / "counts" / "shard_1.tsv").write_text("tampered\t1\n")
    result = run(WORDFREQ, workdir, engine, "--param", "top=3")
    assert result.returncode == 0, result.stderr
    assert ran(workdir) == {"count__shard_1", "merge"}
    # `words_per_shard` enters the first step: everything downstream of it reruns.
    result = run(WORDFREQ, workdir, engine, "--param", "top=3", "--param", "words_per_shard=100")
    assert ran(workdir) == {f"{s}__shard_{i}" for s in ("make_text", "count") for i in range(3)} | {"merge"}


@pytest.mark.parametrize("engine", ENGINES)
def test_failed_step_leaves_no_output_and_reports(tmp_path, engine):
    result = run(DATA / "failing.yaml", tmp_path, engine)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "one.txt").exists() and (tmp_path / "independent.txt").exists()
    assert not (tmp_path / "two.txt").exists(), "a failed step's partial output survived"
    assert not (tmp_path / "three.txt").exists()
    tasks = manifest(tmp_path)["tasks"]
    assert tasks["broken"]["status"] == "failed" and tasks["last"]["status"] != "ran"
    log = (tmp_path / ".portaflow" / "runs" / "latest" / "logs" / "broken.log").read_text()
    assert "something went wrong" in log
    assert "failed broken exit code 7" in result.stdout
    assert "something went wrong" in result.stdout  # the tail of the log is shown
    if engine == "snakemake":  # the failed run's RO-Crate says so, and passes roc-validator (issue 19)
        run_dir = (tmp_path / ".portaflow" / "runs" / "latest").resolve()
        passed, issues = cratecheck.validate(run_dir)
        assert passed, issues
        graph = {e["@id"]: e for e in json.loads((run_dir / "ro-crate-metadata.json").read_text())["@graph"]}
        assert graph["#task/broken"]["actionStatus"].endswith("FailedActionStatus") and "exit code 7" in graph["#task/broken"]["error"]
        assert graph[f"#run/{run_dir.name}"]["actionStatus"].endswith("FailedActionStatus")
    # The next run retries only what did not finish.
    result = run(DATA / "failing.yaml", tmp_path, engine)
    assert result.returncode == 1
    assert ran(tmp_path) == set()


@pytest.mark.parametrize("engine", ENGINES)
def test_retries_recover_a_step_that_fails_once(tmp_path, engine):
    result = run(DATA / "flaky.yaml", tmp_path, engine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "result.txt").read_text() == "hello\n"


@pytest.mark.parametrize("engine", ENGINES)
def test_hostile_values_are_data_not_code(tmp_path, engine):
    evil = "$(touch pwned); touch pwned2 `touch pwned3`"
    result = run(DATA / "quoting.yaml", tmp_path, engine, "--param", f"text={evil}", "--param", "name=a b;c")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out-a b;c.txt").read_text() == evil
    assert (tmp_path / "callable-a b;c.txt").exists()
    for name in ("pwned", "pwned2", "pwned3"):
        assert not list(tmp_path.rglob(name)) and not (Path.cwd() / name).exists()


def test_missing_input_fails_before_anything_runs(tmp_path):
    result = run(DATA / "needs_input.yaml", tmp_path, "parsl")
    assert result.returncode == 2
    assert "raw/measurements.csv does not exist and no step produces it" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".portaflow" / "runs").exists(), "a run directory was made for a run that never started"


def test_snakemake_dry_run_jobs_equal_plan_tasks(tmp_path):
    from portaflow.engines.snakemake_engine import SnakemakeEngine
    from portaflow.schedulers import adapter_for
    from portaflow.schedulers.context import RunContext

    loaded = load_site("local", environ={})
    plan = make_plan(load_workflow(WORDFREQ).workflow, loaded.site, {"shards": 5})
    ctx = RunContext(plan, loaded, tmp_path / "work", tmp_path / "run", plan.tasks, adapter_for(loaded))
    jobs = SnakemakeEngine().dry_run_jobs(ctx, tmp_path / "smk")
    jobs.pop("portaflow_all")
    assert jobs == {t.id: 1 for t in plan.tasks}
    assert len(jobs) == 11


@pytest.mark.parametrize("engine", ENGINES)
def test_walltime_overrun_is_reported_as_timeout(tmp_path, engine):
    result = run(DATA / "overrun.yaml", tmp_path, engine)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TIMEOUT: ran past its walltime of 00:00:03" in result.stdout
    assert not (tmp_path / "long.txt").exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_gpu_tasks_see_the_devices_they_asked_for_under_both_engines(tmp_path, write, engine):
    """Parsl used to pin each worker to one device (a 2-GPU task saw one) and Snakemake set nothing (a task saw all)."""
    site = write("gpu-box.yaml", """\
        name: gpu-box
        scheduler: local
        partitions: {local: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 4GB, gpus_per_node: 2}}
        polling: {interval: 1s}
    """)
    workdir = tmp_path / "work"
    result = run(DATA / "gpu_devices.yaml", workdir, engine, "--site", str(site),
                 env={"CUDA_VISIBLE_DEVICES": "", "XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (workdir / "two.txt").read_text() == "0,1"
    assert (workdir / "one_a.txt").read_text() in ("0", "1") and (workdir / "one_b.txt").read_text() in ("0", "1")
