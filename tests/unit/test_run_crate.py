"""A run's RO-Crate (issue 19), from the run record the driver writes, without an engine: what the crate says of the
tasks (times, jobs, images, files and their sha256), the parameters and the software, for a run that succeeded, one
that failed and one that was interrupted; that it is written atomically, fetches nothing, and has the hook for the
workflow's CWL export. (Real runs with both engines, on the local site and on SLURM, go through roc-validator in
tests/e2e/test_local_engines.py and tests/slurm/test_run_crate_slurm.py; every test run's crate gets
cratecheck.structural_problems, tests/conftest.py.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import socket
from pathlib import Path

import pytest
import yaml

from portaflow.crate import CRATE_FILE, PROFILES, write_crate
from portaflow.driver import RunRecord, load_plan, tool_versions
from portaflow.engines.base import TaskOutcome
from portaflow.engines.state import StateStore, produced_inputs, signature_details
from portaflow.spec.loading import load_workflow

from cratecheck import structural_problems

WORKFLOW = """
name: crate-demo
version: "1.2"
parameters: {shards: 2, label: "a b", scale: 0.5, sizes: [1, 2]}
steps:
  make:
    scatter: {shard: {range: "{shards}"}}
    command: cat {inputs.seed} > {outputs.out}
    inputs: {seed: data/seed.txt}
    outputs: {out: "made/{shard}.txt"}
  merge:
    command: cat {inputs.parts} > {outputs.all}; mkdir -p {outputs.dir}
    inputs: {parts: "made/{shard}.txt"}
    outputs:
      all: merged.txt
      dir: {path: bundle, directory: true}
"""
T0 = dt.datetime(2026, 1, 2, 3, 4, 5).timestamp()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def graph(run_dir: Path) -> dict[str, dict]:
    return {e["@id"]: e for e in json.loads((run_dir / CRATE_FILE).read_text())["@graph"]}


def ids(value) -> list[str]:
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


class Run:
    """A plan of WORKFLOW on the local site and a RunRecord in a work directory; `finish` makes a task's outputs and
    records it done as the driver does, `write` writes the manifest (and the crate)."""

    def __init__(self, tmp_path: Path, write, images: dict | None = None, container: str | None = None):
        path = write("crate-demo.yaml", WORKFLOW)
        loaded_wf, self.loaded, plan = load_plan(load_workflow(path), "local", {}, {})
        if container:
            plan = dataclasses.replace(plan, tasks=[dataclasses.replace(t, container=container) for t in plan.tasks])
        self.plan, self.source = plan, path
        self.workdir = tmp_path / "wd"
        (self.workdir / "data").mkdir(parents=True)
        (self.workdir / "data" / "seed.txt").write_text("seed\n")
        self.store = StateStore(self.workdir)
        self.sigs = signature_details(plan, self.workdir, {})
        self.run_dir = self.workdir / ".portaflow" / "runs" / "r1"
        self.run_dir.mkdir(parents=True)
        (self.run_dir / "site.yaml").write_text("scheduler: local\n")
        (self.run_dir / "parameters.json").write_text(json.dumps(plan.parameters))
        self.record = RunRecord(self.run_dir, plan, self.loaded, "parsl", "r1", self.workdir, self.store,
                                {t.id for t in plan.tasks}, set(), images or {}, dt.datetime.fromtimestamp(T0))
        self.outcomes: dict[str, TaskOutcome] = {}

    def finish(self, task_id: str, offset: float, job: str | None = None) -> None:
        task = self.plan.by_id[task_id]
        for out in task.outputs.values():
            target = self.workdir / out.path
            if out.directory:
                target.mkdir(parents=True, exist_ok=True)
                (target / "x").write_text(task_id)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"{task_id}\n")
        self.store.write(task, self.sigs[task_id], produced_inputs(self.plan, self.store, task))
        self.outcomes[task_id] = TaskOutcome(task_id, True, 0, job_id=job, started=T0 + offset, finished=T0 + offset + 1.5)

    def fail(self, task_id: str, offset: float, message: str = "the command failed") -> None:
        self.outcomes[task_id] = TaskOutcome(task_id, False, 3, message=message, started=T0 + offset, finished=T0 + offset + 1)

    def write(self, status: str) -> dict:
        return self.record.write(self.outcomes, ["4242"], status=status)


def test_succeeded_run_crate_holds_tasks_times_jobs_digests_parameters_and_versions(tmp_path, write):
    run = Run(tmp_path, write)
    run.finish("make__shard_0", 0, job="101")
    run.finish("make__shard_1", 1, job="102")
    run.finish("merge", 5, job="103")
    manifest = run.write("succeeded")
    assert structural_problems(run.run_dir) == []
    g = graph(run.run_dir)
    root = g["./"]
    assert set(ids(root["conformsTo"])) == set(PROFILES.values())
    # The workflow: a copy of the file that ran, with its steps as tools and HowToSteps, its parameters as inputs.
    workflow = g[root["mainEntity"]["@id"]]
    assert workflow["@id"] == "workflow.yaml" and (run.run_dir / "workflow.yaml").read_text() == run.source.read_text()
    assert workflow["sha256"] == sha(run.source) and workflow["version"] == "1.2"
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"} == set(workflow["@type"])
    assert [g[i]["name"] for i in ids(workflow["hasPart"])] == ["make", "merge"]
    assert [g[i]["workExample"]["@id"] for i in ids(workflow["step"])] == ids(workflow["hasPart"])
    # The parameters: a FormalParameter and the value used (lists as JSON text), the run's objects.
    values = {g[i]["name"]: g[i] for i in ids(workflow["input"])}
    assert {n: (fp["additionalType"], fp.get("multipleValues", False)) for n, fp in values.items()} == {
        "shards": ("Integer", False), "label": ("Text", False), "scale": ("Float", False), "sizes": ("Integer", True)}
    used = {g[i]["name"]: g[i]["value"] for i in ids(g["#run/r1"]["object"])}
    assert used == {"shards": 2, "label": "a b", "scale": 0.5, "sizes": "[1, 2]"} and manifest["parameters"]["sizes"] == [1, 2]
    # Each task: a CreateAction of its step's tool with the engine's times, its job, what it read and wrote.
    for task_id, job in (("make__shard_0", "101"), ("make__shard_1", "102"), ("merge", "103")):
        action = g[f"#task/{task_id}"]
        info = manifest["tasks"][task_id]
        assert action["startTime"] == info["started"] and action["endTime"] == info["finished"]
        assert dt.datetime.fromisoformat(action["endTime"]) - dt.datetime.fromisoformat(action["startTime"]) == dt.timedelta(seconds=1.5)
        assert action["actionStatus"] == "http://schema.org/CompletedActionStatus" and info["job"] == job
        assert action["identifier"] == f"scheduler job {job}"
        assert g[action["instrument"]["@id"]]["name"] == run.plan.by_id[task_id].step
    assert dt.datetime.fromisoformat(g["#task/make__shard_0"]["startTime"]).timestamp() == T0
    merge = g["#task/merge"]
    assert {g[i]["name"]: g[i]["sha256"] for i in ids(merge["object"])} == {
        p: manifest["outputs"][p]["sha256"] for p in ("made/0.txt", "made/1.txt")}
    results = {g[i]["name"]: g[i] for i in ids(merge["result"])}
    assert set(results) == {"merged.txt", "bundle"} and results["bundle"]["@type"] == "Dataset"
    assert results["merged.txt"]["sha256"] == sha(run.workdir / "merged.txt") == manifest["outputs"]["merged.txt"]["sha256"]
    assert ids(merge["result"]) == ["../../../merged.txt", "../../../bundle/"]
    seed = g["../../../data/seed.txt"]  # an input from outside the workflow, as the task's signature hashed it
    assert seed["sha256"] == sha(run.workdir / "data" / "seed.txt") == manifest["tasks"]["make__shard_0"]["inputs"]["data/seed.txt"]
    assert {g[i]["@type"] for i in ids(g["#task/make__shard_1"]["object"])} == {"File", "PropertyValue"}  # the scatter value
    # Every output of the run is a result of the run; the run is organised by portaflow with the engine.
    assert set(ids(g["#run/r1"]["result"])) == {f"../../../{p}" + ("/" if p == "bundle" else "") for p in manifest["outputs"]}
    organize = g["#organize/r1"]
    assert organize["result"]["@id"] == "#run/r1" and len(ids(organize["object"])) == 3
    portaflow = g[organize["instrument"]["@id"]]
    software = {g[i]["name"]: g[i]["softwareVersion"] for i in ids(portaflow["softwareRequirements"])}
    versions = tool_versions()
    assert portaflow["softwareVersion"] == versions["portaflow"]
    assert software == {k: v for k, v in versions.items() if k != "portaflow"} and "python" in software and "parsl" in software
    assert g["#run/r1"]["actionStatus"] == "http://schema.org/CompletedActionStatus" and "error" not in g["#run/r1"]
    assert {"manifest.json", "site.yaml", "parameters.json"} <= set(ids(root["hasPart"]))


def test_failed_and_interrupted_runs_say_what_happened(tmp_path, write):
    run = Run(tmp_path, write)
    run.finish("make__shard_0", 0)
    run.fail("make__shard_1", 1, "the command failed")
    run.outcomes["merge"] = TaskOutcome("merge", False, None, message="not run: a task it depends on failed")
    manifest = run.write("failed")
    assert structural_problems(run.run_dir) == []
    g = graph(run.run_dir)
    failed = g["#task/make__shard_1"]
    assert failed["actionStatus"] == "http://schema.org/FailedActionStatus" and failed["error"] == "the command failed (exit code 3)"
    assert failed["result"] == [] and "startTime" in failed and "identifier" not in failed  # no job on the local site
    merge = g["#task/merge"]
    assert merge["actionStatus"] == "http://schema.org/FailedActionStatus" and "startTime" not in merge
    assert ids(merge["object"]) == ["../../../made/0.txt"]  # what exists of its inputs; made/1.txt never did
    assert g["#run/r1"]["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert "make[shard=1]: the command failed" in g["#run/r1"]["error"]
    assert ids(g["#run/r1"]["result"]) == ["../../../made/0.txt"] and set(manifest["outputs"]) == {"made/0.txt"}

    # Interrupted: the crate is rewritten (atomically) with the kept task as done and the rest as not run.
    run.outcomes = {"make__shard_0": run.outcomes["make__shard_0"]}
    run.write("interrupted")
    g = graph(run.run_dir)
    assert g["#run/r1"]["error"].startswith("the run interrupted")
    assert g["#task/make__shard_0"]["actionStatus"] == "http://schema.org/CompletedActionStatus"
    for task_id in ("make__shard_1", "merge"):
        assert g[f"#task/{task_id}"]["actionStatus"] == "http://schema.org/FailedActionStatus"
        assert g[f"#task/{task_id}"]["error"] == "not run: the run interrupted"
    assert not list(run.run_dir.glob(".*tmp")), "a temporary file was left"
    assert structural_problems(run.run_dir) == []


def test_running_record_writes_no_crate_and_a_failing_crate_write_leaves_the_old_one(tmp_path, write):
    run = Run(tmp_path, write)
    run.write("running")
    assert not (run.run_dir / CRATE_FILE).exists()  # a run killed with -9 leaves a manifest that says so, no crate
    run.finish("make__shard_0", 0)
    run.write("failed")
    before = (run.run_dir / CRATE_FILE).read_bytes()
    with pytest.raises(KeyError):  # a crate that cannot be made is never half written
        write_crate(run.run_dir, {"status": "failed"}, run.plan)
    assert (run.run_dir / CRATE_FILE).read_bytes() == before


def test_container_image_and_digest(tmp_path, write):
    images = {"tools": {"runtime": "podman", "image": "localhost/portaflow-tools:1", "digest": "sha256:" + "ab" * 32}}
    run = Run(tmp_path, write, images=images, container="tools")
    run.finish("make__shard_0", 0)
    run.write("failed")
    g = graph(run.run_dir)
    image = g[g["#task/make__shard_0"]["containerImage"]["@id"]]
    assert image["@type"] == "ContainerImage" and image["identifier"] == "localhost/portaflow-tools:1"
    assert image["sha256"] == "ab" * 32 and image["additionalType"]["@id"].endswith("#DockerImage")
    assert structural_problems(run.run_dir) == []


def test_crate_holds_the_workflows_cwl_export_made_when_it_is_written(tmp_path, write):
    """Issue 19: the crate holds the workflow's CWL export (`cwl/`, as `portaflow export cwl` writes it for the run's
    site and parameters), its workflow.cwl the main workflow's `subjectOf` in the CWL language; a given export folder
    (the RunRecord hook) is copied in instead; a run of a CWL document (no export of its own) has none."""
    from portaflow.exchange.cwl_export import build

    run = Run(tmp_path, write)
    run.finish("make__shard_0", 0)
    manifest = run.write("failed")
    g = graph(run.run_dir)
    described = g[g["workflow.yaml"]["subjectOf"]["@id"]]
    assert described["@id"] == "cwl/workflow.cwl" and described["sha256"] == sha(run.run_dir / "cwl" / "workflow.cwl")
    assert g[described["programmingLanguage"]["@id"]]["alternateName"] == "CWL"
    assert "SoftwareSourceCode" in described["@type"]
    folder = g["cwl/"]
    exported = {p.name for p in (run.run_dir / "cwl").iterdir()}
    assert exported == {"workflow.cwl", "job.yml", "portaflow-lib.js", "step-make.cwl", "step-merge.cwl"}
    assert {i.removeprefix("cwl/") for i in ids(folder["hasPart"])} == exported
    assert all(g[f"cwl/{name}"]["sha256"] == sha(run.run_dir / "cwl" / name) for name in exported)
    # what `portaflow export cwl` makes of this workflow, on this site, with the run's parameters
    expected = build(load_workflow(run.source), run.loaded, run.plan, run.workdir)
    job = yaml.safe_load((run.run_dir / "cwl" / "job.yml").read_text())
    assert job == expected.job and job["input_data_seed_txt"]["path"].endswith("wd/data/seed.txt")
    assert yaml.safe_load((run.run_dir / "cwl" / "workflow.cwl").read_text()) == expected.workflow
    assert structural_problems(run.run_dir) == []
    # The hook: an export made elsewhere (a folder with workflow.cwl) is copied in instead.
    given = tmp_path / "exported"
    given.mkdir()
    (given / "workflow.cwl").write_text("cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\nsteps: []\n")
    write_crate(run.run_dir, manifest, run.plan, cwl_export=given)
    g = graph(run.run_dir)
    assert {p.name for p in (run.run_dir / "cwl").iterdir()} == {"workflow.cwl"}
    assert g["cwl/workflow.cwl"]["sha256"] == sha(given / "workflow.cwl") and "cwl/step-make.cwl" not in g
    # A run of a CWL document: the document is the main workflow; nothing is exported.
    cwl_doc = write("tool.cwl", "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: true\ninputs: []\noutputs: []\n")
    other = run.run_dir.with_name("r2")
    other.mkdir()
    record = dataclasses.replace(run.record, run_dir=other, plan=dataclasses.replace(run.plan, source=str(cwl_doc)))
    record.write(run.outcomes, [], status="failed")
    g = graph(other)
    main = g[g["./"]["mainEntity"]["@id"]]
    assert main["@id"] == "workflow.cwl" and (other / "workflow.cwl").read_text() == cwl_doc.read_text()
    assert g[main["programmingLanguage"]["@id"]]["alternateName"] == "CWL"
    assert "subjectOf" not in main and not (other / "cwl").exists() and not (other / "workflow.yaml").exists()


def test_cwl_export_hook_and_plan_made_in_code(tmp_path, write):
    run = Run(tmp_path, write)
    run.finish("make__shard_0", 0)
    manifest = run.write("failed")
    # A plan made in code (no workflow file): its outline stands for the workflow.
    plan = dataclasses.replace(run.plan, source=None)
    write_crate(run.run_dir, manifest, plan)
    g = graph(run.run_dir)
    assert g["./"]["mainEntity"]["@id"] == "plan.json"
    outline = json.loads((run.run_dir / "plan.json").read_text())
    assert [t["id"] for t in outline["tasks"]] == [t.id for t in run.plan.tasks] and "command" not in outline["tasks"][0]
    assert structural_problems(run.run_dir) == []


def test_writing_a_crate_contacts_nothing(tmp_path, write, monkeypatch):
    """rocrate must not fetch a context (or anything else) while the crate is made: no socket connects."""
    run = Run(tmp_path, write)
    run.finish("make__shard_0", 0)
    tried = []

    def refuse(self, address):
        tried.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    run.write("failed")
    assert (run.run_dir / CRATE_FILE).exists() and tried == []


def test_a_crate_that_cannot_be_written_costs_only_the_crate(tmp_path, write, monkeypatch, caplog):
    """Without the rocrate library (the `exchange` extra) a run says so and writes no crate; any other failure is logged
    as an error. Either way the manifest is written and nothing is raised to the run."""
    import portaflow.driver as driver

    run = Run(tmp_path, write)
    run.finish("make__shard_0", 0)

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'rocrate'", name="rocrate")

    monkeypatch.setattr(driver, "write_crate", missing)
    manifest = run.write("failed")
    assert not (run.run_dir / CRATE_FILE).exists() and json.loads((run.run_dir / "manifest.json").read_text()) == manifest
    assert "no RO-Crate written: the rocrate library is not installed" in caplog.text

    def broken(*args, **kwargs):
        raise ValueError("bad value")

    monkeypatch.setattr(driver, "write_crate", broken)
    run.write("failed")
    assert "could not write its RO-Crate (ValueError: bad value)" in caplog.text


def test_the_structural_check_finds_what_it_checks(tmp_path, write):
    """cratecheck.structural_problems (run on every test run's crate) fails a crate whose digest, reference, term or
    task status is wrong."""
    run = Run(tmp_path, write)
    run.finish("make__shard_0", 0)
    run.write("failed")
    path = run.run_dir / CRATE_FILE
    good = json.loads(path.read_text())

    def problems_with(change) -> list[str]:
        data = json.loads(json.dumps(good))
        change({e["@id"]: e for e in data["@graph"]})
        path.write_text(json.dumps(data))
        return structural_problems(run.run_dir)

    assert problems_with(lambda g: None) == []
    assert "the manifest has" in " ".join(problems_with(lambda g: g["../../../made/0.txt"].update(sha256="0" * 64)))
    assert "does not describe" in " ".join(problems_with(lambda g: g["#task/merge"].update(instrument={"@id": "#step/nowhere"})))
    assert "in neither context" in " ".join(problems_with(lambda g: g["#task/merge"].update(startTimee="2026-01-01")))
    assert "in the crate" in " ".join(problems_with(lambda g: g["#task/merge"].update(actionStatus="http://schema.org/CompletedActionStatus")))
    path.write_text(json.dumps(good))  # the crate as the run wrote it, for conftest's check after the test
