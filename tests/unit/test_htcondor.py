"""HTCondor pools: what both engines hand to HTCondor, checked with HTCondor's own parser, and bad profiles refused.

No pool runs here (tests/../docs/architecture.md): every rendered submit description is parsed by
`htcondor2.Submit` (HTCondor's parser), its keys are checked against the documented submit commands,
and, where the version-1 bindings are installed (htcondor < 25, which the Snakemake plugin pins),
each description is expanded into the job ClassAd condor_submit would send to the schedd
(`htcondor.Submit.jobs()`), from which the expected values are read back.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from test_golden_render import GOLDEN, WORKDIR, normalise
from testlib import ROOT, SITES, WORKFLOWS, run_portaflow

os.environ.setdefault("CONDOR_CONFIG", "/dev/null")  # the bindings need no pool configuration to parse
htcondor2 = pytest.importorskip("htcondor2")

from portaflow.errors import InputError, PlanError  # noqa: E402
from portaflow.plan import make_plan  # noqa: E402
from portaflow.schedulers.htcondor import HTCondorScheduler  # noqa: E402
from portaflow.schedulers.htcondor.commands import is_documented_command  # noqa: E402
from portaflow.spec.loading import load_site, load_workflow  # noqa: E402

# The module-scoped fixtures render or run once per test process: one xdist worker takes the whole module.
pytestmark = pytest.mark.xdist_group("htcondor-renders")

RESOURCES = ROOT / "tests" / "data" / "workflows" / "resources.yaml"
WORDFREQ = WORKFLOWS / "examples" / "wordfreq.yaml"
CERN, INFN = "example-cern-htcondor", "example-infn-htcondor"
CASES = [
    (RESOURCES, CERN, "parsl"), (RESOURCES, CERN, "snakemake"), (WORDFREQ, CERN, "parsl"), (WORDFREQ, CERN, "snakemake"),
    (RESOURCES, INFN, "snakemake"), (WORDFREQ, INFN, "snakemake"),
]
CASE_IDS = [f"{w.stem}--{s}--{e}" for w, s, e in CASES]


# The version-1 bindings bundle their own boost-python; python-casacore uses boost-python too, and a process
# that loads both breaks casacore (dask-ms then fails with KeyError 'FLAG'). So they only ever load in a
# subprocess of their own, never in the test process.
_EXPAND_JOB_ADS = """
import json, sys
import htcondor
out = []
for text in json.load(sys.stdin):
    ad = next(iter(htcondor.Submit(text).jobs(count=1)))
    out.append({key: ad[key] if isinstance(ad[key], (bool, int, float, str)) else str(ad[key]) for key in ad.keys()})
print(json.dumps(out))
"""


def _job_ads_available() -> str | None:
    """Why the job-ClassAd expansion cannot run (None when it can): it needs the version-1 bindings."""
    probe = subprocess.run([sys.executable, "-c", "import htcondor"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"htcondor version-1 bindings not importable ({probe.stderr.strip().splitlines()[-1:]}); htcondor2.Submit has no offline jobs()"
    return None


def job_ads(texts: list[str]) -> list[dict]:
    """Each submit description expanded by condor_submit's own code (version-1 bindings, in a subprocess)."""
    result = subprocess.run([sys.executable, "-c", _EXPAND_JOB_ADS], input=json.dumps(texts), capture_output=True, text=True,
                            env={**os.environ, "USER": "alice"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    """Render every case once: case id -> render directory."""
    out = {}
    for (workflow, site, engine), case in zip(CASES, CASE_IDS, strict=True):
        out_dir = tmp_path_factory.mktemp(case) / "render"
        args = ["render", str(workflow), "--site", site, "--engine", engine, "-o", str(out_dir), "--workdir", WORKDIR]
        result = run_portaflow(*args, *(["--param", "shards=2"] if workflow == WORDFREQ else []), cwd=ROOT)
        assert result.returncode == 0, result.stderr
        out[case] = out_dir
    return out


def submit_files(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "jobs").glob("*.sub"))


def plan_for(workflow: Path, site: str):
    loaded = load_site(site)
    params = {"shards": 2} if workflow == WORDFREQ else {}
    return loaded, make_plan(load_workflow(workflow).workflow, loaded.site, params)


def description_for(out_dir: Path, engine: str, task) -> Path:
    """The submit description that runs `task`: one per rule (Snakemake), one per resource class (Parsl)."""
    if engine == "snakemake":
        return out_dir / "jobs" / f"{task.id}.sub"
    r = task.resources
    prefix = f"{task.partition}_c{r.cores}_m{r.memory_mib}_g{r.gpus}"
    [path] = [p for p in submit_files(out_dir) if p.name.startswith(prefix)]
    return path


# -- golden files ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASE_IDS)
def test_rendered_files_match_golden(rendered, case):
    out_dir = rendered[case]
    relative = os.path.relpath(out_dir, WORKDIR)  # no shared filesystem: Snakemake names the Snakefile from the work directory

    def norm(text: str) -> str:
        return normalise(text.replace(relative, "<RENDER_DIR_FROM_WORKDIR>"), out_dir).replace(str(Path.home()), "<HOME>")

    files = {p.relative_to(out_dir): norm(p.read_text()) for p in sorted(out_dir.rglob("*")) if p.is_file()}
    golden_dir = GOLDEN / case
    if os.environ.get("PORTAFLOW_UPDATE_GOLDEN") == "1":
        for rel, text in files.items():
            (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / rel).write_text(text)
    expected = {p.relative_to(golden_dir): p.read_text() for p in sorted(golden_dir.rglob("*")) if p.is_file()}
    assert sorted(files) == sorted(expected), "rendered files differ from the golden set"
    for rel, text in files.items():
        assert text == expected[rel], f"{rel} differs from {golden_dir / rel}; rerun with PORTAFLOW_UPDATE_GOLDEN=1 if intended"


# -- HTCondor's parser -------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASE_IDS)
def test_every_description_parses_with_documented_commands(rendered, case):
    workflow, site, engine = CASES[CASE_IDS.index(case)]
    files = submit_files(rendered[case])
    _, plan = plan_for(workflow, site)
    expected = len(plan.tasks) if engine == "snakemake" else len({description_for(rendered[case], engine, t) for t in plan.tasks})
    assert len(files) == expected and files, f"expected {expected} submit descriptions, found {[f.name for f in files]}"
    for path in files:
        parsed = htcondor2.Submit(path.read_text())  # raises on text HTCondor's parser rejects
        unknown = [key for key in parsed.keys() if not is_documented_command(key)]
        assert not unknown, f"{path.name}: not documented submit commands: {unknown}"
        assert parsed.getQArgs() == "" or parsed.getQArgs().strip() in ("", "1")


def test_parser_check_would_catch_a_misspelt_command():
    """The documented-command check is what catches what the parser lets through."""
    parsed = htcondor2.Submit("executable = /bin/true\ntransfer_input_file = a.txt\n+JobFlavour = \"espresso\"\n")
    assert [k for k in parsed.keys() if not is_documented_command(k)] == ["transfer_input_file"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_expected_values_read_back_from_the_parsed_descriptions(rendered, case):
    workflow, site, engine = CASES[CASE_IDS.index(case)]
    loaded, plan = plan_for(workflow, site)
    scheduler = HTCondorScheduler(loaded)
    for task in plan.tasks:
        r = task.resources
        parsed = htcondor2.Submit(description_for(rendered[case], engine, task).read_text())
        assert int(parsed["request_cpus"]) == r.cores
        assert int(parsed["request_memory"]) == r.memory_mib
        assert int(parsed.get("request_gpus", 0)) == r.gpus
        assert parsed["MY.PortaflowRun"] == '"render"'
        if site == CERN:
            assert parsed["MY.JobFlavour"] == f'"{scheduler.flavour_for(r.walltime_s)}"'
            assert "MY.MaxRuntime" not in parsed
            assert parsed["MY.WantOS"] == '"el9"'
        else:
            assert int(parsed["MY.MaxRuntime"]) == r.walltime_s
            assert parsed["requirements"] == '(TARGET.OpSysAndVer =?= "AlmaLinux9")'
            assert parsed["request_disk"] == "10240MB"
            assert parsed["should_transfer_files"] == "YES"
            outputs = sorted(p.strip() for p in parsed["transfer_output_files"].split(","))
            assert outputs == sorted(task.output_paths())
            inputs = {p.strip() for p in parsed.get("transfer_input_files", "").split(",")}
            assert set(task.input_paths()) <= inputs


@pytest.mark.skipif(_job_ads_available() is not None, reason=str(_job_ads_available()))
@pytest.mark.parametrize("case", CASE_IDS)
def test_job_ads_condor_submit_would_send(rendered, case):
    """Each description expanded by condor_submit's own code into the job ClassAd the schedd would get."""
    workflow, site, engine = CASES[CASE_IDS.index(case)]
    loaded, plan = plan_for(workflow, site)
    ads = job_ads([description_for(rendered[case], engine, task).read_text() for task in plan.tasks])
    for task, ad in zip(plan.tasks, ads, strict=True):
        r = task.resources
        assert (ad["RequestCpus"], ad["RequestMemory"]) == (r.cores, r.memory_mib)
        assert ad.get("RequestGPUs", 0) == r.gpus
        assert ad["PortaflowRun"] == "render"
        if site == CERN:
            # Parsl writes accounting_group (the user is the submitter); the Snakemake plugin the same attributes directly.
            assert ad["AcctGroup"] == "group_u_CHANGEME.u_users"
            assert ad["AccountingGroup"].startswith("group_u_CHANGEME.u_users.")
            assert ad["JobFlavour"] in loaded.site.htcondor.flavours
            assert loaded.site.htcondor.flavours[ad["JobFlavour"]] >= r.walltime_s
        else:
            assert ad["MaxRuntime"] == r.walltime_s
            assert ad["RequestDisk"] == 10240 * 1024  # KiB
            assert ad["ShouldTransferFiles"] == "YES"
            assert sorted(ad["TransferOutput"].split(",")) == sorted(task.output_paths())
            assert "OpSysAndVer" in str(ad["Requirements"])


# -- the scheduler module ----------------------------------------------------------------------
def test_flavour_is_the_shortest_that_covers_the_walltime():
    scheduler = HTCondorScheduler(load_site(CERN))
    assert scheduler.flavour_for(20 * 60) == "espresso"
    assert scheduler.flavour_for(20 * 60 + 1) == "microcentury"
    assert scheduler.flavour_for(7 * 86400) == "nextweek"
    with pytest.raises(PlanError, match="longer than the longest flavour in htcondor.flavours \\(nextweek: 7 days\\)"):
        scheduler.flavour_for(7 * 86400 + 1)


def test_gpu_model_becomes_require_gpus():
    from portaflow.plan.model import TaskResources

    scheduler = HTCondorScheduler(load_site(CERN))
    commands = scheduler.commands(TaskResources(4, 8000, 3600, gpus=1, gpu_model="a100"), "gpu")
    assert commands["request_gpus"] == "1" and commands["require_gpus"] == "Capability == 8.0"
    parsed = htcondor2.Submit("\n".join(f"{k} = {v}" for k, v in commands.items()))
    assert parsed["require_gpus"] == "Capability == 8.0"


def test_container_modes():
    scheduler = HTCondorScheduler(load_site(CERN))
    assert scheduler.runs_containers()
    assert scheduler.container_commands("/cvmfs/x/hep.sif") == {"+SingularityImage": '"/cvmfs/x/hep.sif"'}
    universe = HTCondorScheduler(load_site(CERN, {"htcondor.container_mode": "universe"}))
    assert universe.container_commands("/cvmfs/x/hep.sif") == {"universe": "container", "container_image": "/cvmfs/x/hep.sif"}
    wrap = HTCondorScheduler(load_site(CERN, {"htcondor.container_mode": "wrap"}))
    assert not wrap.runs_containers() and wrap.container_commands("/cvmfs/x/hep.sif") == {}


def test_pool_started_container_is_not_wrapped_again(tmp_path):
    """container_mode attribute: the image goes into the description and the step's command runs unwrapped."""
    from portaflow.schedulers import adapter_for
    from portaflow.schedulers.context import RunContext

    workflow = tmp_path / "wf.yaml"
    workflow.write_text("name: boxed\nsteps:\n  s:\n    command: echo hi > {outputs.o}\n    outputs: {o: o.txt}\n    container: hep\n")
    for mode, wrapped in (("attribute", False), ("wrap", True)):
        loaded = load_site(CERN, {"htcondor.container_mode": mode})
        plan = make_plan(load_workflow(workflow).workflow, loaded.site, {})
        ctx = RunContext(plan, loaded, tmp_path, tmp_path / "run", plan.tasks, adapter_for(loaded))
        assert ("apptainer" in ctx.shell_line(plan.tasks[0])) is wrapped
        out = tmp_path / f"render-{mode}"
        result = run_portaflow("render", str(workflow), "--site", CERN, "--site-set", f"htcondor.container_mode={mode}",
                               "--engine", "parsl", "-o", str(out), cwd=ROOT)
        assert result.returncode == 0, result.stderr
        [sub] = submit_files(out)
        parsed = htcondor2.Submit(sub.read_text())
        image = "/cvmfs/unpacked.cern.ch/gitlab-registry.cern.ch/CHANGEME/portaflow/hep.sif"
        assert parsed.get("MY.SingularityImage") == (None if wrapped else f'"{image}"')


def test_client_environment_names_the_token_variable_and_reads_it_only_at_run_time(monkeypatch):
    scheduler = HTCondorScheduler(load_site(INFN))
    monkeypatch.delenv("BEARER_TOKEN_FILE", raising=False)
    shown = scheduler.client_environment(resolve=False)
    assert shown == {"_CONDOR_SCHEDD_HOST": "CHANGEME-schedd.cr.cnaf.infn.it", "_CONDOR_COLLECTOR_HOST": "CHANGEME-collector.cr.cnaf.infn.it:9618",
                     "_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "SCITOKENS", "_CONDOR_SCITOKENS_FILE": "$BEARER_TOKEN_FILE"}
    with pytest.raises(InputError, match=r"\$BEARER_TOKEN_FILE, which is not set"):
        scheduler.client_environment()
    monkeypatch.setenv("BEARER_TOKEN_FILE", "/run/user/0/bt_u0")
    assert scheduler.client_environment()["_CONDOR_SCITOKENS_FILE"] == "/run/user/0/bt_u0"


def test_cancel_run_removes_the_runs_jobs(tmp_path, monkeypatch):
    """The real cancel path, against stand-in condor_q/condor_rm that record how they were called."""
    calls = tmp_path / "calls"
    for name, output in (("condor_q", "41 0\n42 0\n"), ("condor_rm", "")):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\necho \"{name} $* schedd=$_CONDOR_SCHEDD_HOST\" >> {calls}\nprintf '{output}'\n")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    removed = HTCondorScheduler(load_site(INFN)).cancel_run("20260101-000000-snakemake-abcd", ["43", "41"])
    assert removed == ["41.0", "42.0", "43"]
    lines = calls.read_text().splitlines()
    assert lines[0] == ('condor_q -constraint PortaflowRun == "20260101-000000-snakemake-abcd" -af ClusterId ProcId '
                        "schedd=CHANGEME-schedd.cr.cnaf.infn.it")
    assert lines[1] == "condor_rm 41.0 42.0 43 schedd=CHANGEME-schedd.cr.cnaf.infn.it"


# -- bad input: refused before anything is submitted ------------------------------------------
def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(f"name: pool\nextends: {SITES / 'example-cern-htcondor.yaml'}\n{text}")
    return path


@pytest.mark.parametrize("text, where, message", [
    ("partitions:\n  gpu: {max_walltime: 1d, cores_per_node: 16, memory_per_node: 64GB, gpus_per_node: 4, gpu_models: [v100, a100, h100]}\n",
     "pool.yaml:4:", "partitions.gpu.gpu_models[2]: HTCondor cannot select GPU model h100: htcondor.gpu_requirements has no "
                     "require_gpus expression for it (expected htcondor.gpu_requirements.h100"),
    ("htcondor:\n  gpu_requirements: {h100: 'Capability == 9.0'}\n",
     "pool.yaml:4:", "htcondor.gpu_requirements.h100: no partition offers GPU model h100 (expected h100 in the gpu_models of a partition with GPUs"),
    ("partitions:\n  batch: {max_walltime: 1d, cores_per_node: 8, memory_per_node: 16GB, gpu_models: [v100]}\n",
     "pool.yaml:4:", "partitions.batch.gpu_models: partition batch offers GPU models but has no GPUs (expected gpus_per_node of 1 or more"),
    ("partitions:\n  batch: {max_walltime: 14d, cores_per_node: 8, memory_per_node: 16GB}\n",
     "pool.yaml:4:", "partitions.batch.max_walltime: partition batch allows 14 days, longer than the longest flavour in "
                     "htcondor.flavours (nextweek: 7 days) (expected at most 7 days"),
    ("extra_directives: ['request_memory = 4GB']\n",
     "pool.yaml:3:", "extra_directives[0]: 'request_memory = 4GB' sets request_memory, which portaflow manages from the plan"),
    ("extra_directives: ['+JobFlavour = \"tomorrow\"']\n",
     "pool.yaml:3:", "sets +JobFlavour, which portaflow manages"),
    ("extra_directives: ['transfer_input_file = data.txt']\n",
     "pool.yaml:3:", "extra_directives[0]: transfer_input_file is not a documented HTCondor submit command"),
    ("dask: {mode: jobs}\n",
     "pool.yaml:3:", "dask.mode: Dask workers as jobs of their own (dask-jobqueue) are implemented for SLURM only"),
])
def test_profile_asking_what_htcondor_cannot_express_is_refused(tmp_path, text, where, message):
    profile = _profile(tmp_path, text)
    for command in (["validate", str(profile)], ["plan", str(RESOURCES), "--site", str(profile)]):
        result = run_portaflow(*command, cwd=ROOT)
        assert result.returncode == 2, result.stdout + result.stderr
        assert where in result.stdout + result.stderr and message in result.stdout + result.stderr, result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_step_longer_than_every_flavour_is_refused(tmp_path):
    workflow = tmp_path / "long.yaml"
    workflow.write_text("name: long\nsteps:\n  s:\n    command: sleep 1 > {outputs.o}\n    outputs: {o: o.txt}\n    resources: {walltime: 8d}\n")
    result = run_portaflow("render", str(workflow), "--site", CERN, "-o", str(tmp_path / "out"), cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "step s cannot run on site example-cern-htcondor" in result.stderr and "allows at most 7 days" in result.stderr


def test_storage_credentials_in_the_users_environment_never_reach_a_submit_description(tmp_path):
    """Snakemake hands every installed storage plugin's SNAKEMAKE_STORAGE_* variables to each job (the htcondor plugin
    writes them into `environment`, stored with the job); a pool without an object store gets none of them, and
    its jobs start Snakemake without a per-job `pip install` of storage plugins (portaflow's plugin portaflow-htcondor)."""
    secret = "portaflow-test-secret-value"
    result = run_portaflow("render", str(WORDFREQ), "--site", CERN, "--engine", "snakemake", "-o", str(tmp_path / "out"), cwd=ROOT,
                           env={"SNAKEMAKE_STORAGE_S3_SECRET_KEY": secret, "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "portaflow-test"})
    assert result.returncode == 0, result.stderr
    submits = [p.read_text() for p in (tmp_path / "out" / "jobs").glob("*.sub")]
    assert len(submits) == 7  # wordfreq's three shards: 3 + 3 + 1 rules
    assert not any(secret in text or "portaflow-test" in text or "pip install" in text for text in submits)


def test_parsl_on_a_pool_without_shared_filesystem_is_refused(tmp_path):
    result = run_portaflow("render", str(RESOURCES), "--site", INFN, "--engine", "parsl", "-o", str(tmp_path / "out"), cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has no shared filesystem (storage.shared_filesystem: false), which the Parsl engine cannot use with HTCondor" in result.stderr


def test_snakemake_refuses_what_its_plugin_would_quote_wrongly(tmp_path):
    """The plugin quotes string values of raw commands: use_oauth_services would reach HTCondor as '"scitokens"'."""
    result = run_portaflow("render", str(RESOURCES), "--site", INFN, "--site-set", "htcondor.credentials.oauth_services=[scitokens]",
                           "--engine", "snakemake", "-o", str(tmp_path / "out"), cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'use_oauth_services = scitokens' cannot be handed to Snakemake's htcondor plugin unchanged" in result.stderr
    result = run_portaflow("render", str(RESOURCES), "--site", INFN, "--site-set", "htcondor.credentials.oauth_services=[scitokens]",
                           "--engine", "parsl", "--site-set", "storage.shared_filesystem=true", "-o", str(tmp_path / "parsl"), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for sub in submit_files(tmp_path / "parsl"):
        assert htcondor2.Submit(sub.read_text())["use_oauth_services"] == "scitokens"


def test_examples_are_marked_and_valid():
    for name in (CERN, INFN):
        assert load_site(name).site.example
    result = run_portaflow("validate", str(SITES / f"{CERN}.yaml"), str(SITES / f"{INFN}.yaml"), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_parsl_and_snakemake_ask_the_pool_for_the_same_jobs(rendered):
    """For every task, the job ClassAd condor_submit would build from Parsl's description equals the one from the
    Snakemake plugin's, in every attribute that sizes, places, charges or tags the job (the rest names files and
    commands, which differ by engine). The CERN-like profile is the one both engines run on (the INFN-like pool has
    no shared filesystem, which Parsl refuses)."""
    if reason := _job_ads_available():
        pytest.skip(reason)
    compared = ("RequestCpus", "RequestMemory", "RequestGPUs", "RequireGPUs", "RequestDisk", "AcctGroup", "AccountingGroup",
                "JobFlavour", "MaxRuntime", "PortaflowRun", "WantOS", "ContainerImage", "SingularityImage")
    for workflow in (RESOURCES, WORDFREQ):
        _, plan = plan_for(workflow, CERN)
        ads = {engine: job_ads([description_for(rendered[f"{workflow.stem}--{CERN}--{engine}"], engine, task).read_text()
                                for task in plan.tasks]) for engine in ("parsl", "snakemake")}
        for task, parsl_ad, snakemake_ad in zip(plan.tasks, ads["parsl"], ads["snakemake"], strict=True):
            parsl = {k: parsl_ad.get(k) for k in compared}
            snakemake = {k: snakemake_ad.get(k) for k in compared}
            # The submitter's name ends AccountingGroup: condor_submit takes the login name for Parsl's accounting_group,
            # the plugin's attributes $ENV(USER) (the same on a login node; here USER is set to another name).
            for ad in (parsl, snakemake):
                group, _, user = str(ad.pop("AccountingGroup")).rpartition(".")
                assert group == ad["AcctGroup"] and user, ad
            assert parsl == snakemake, f"{workflow.stem}, task {task.id}"
            assert parsl["RequestCpus"] == task.resources.cores  # and the comparison is of something


# -- what a job runs: the node's program, the site's job wrapper; no storage settings without an object store ---------
WRAPPER = "/afs/desy.de/user/j/jdoe/naf-wrapper.sh"


def test_job_executable_is_one_rule_for_both_engines():
    from portaflow.schedulers.htcondor import job_executable

    assert job_executable("/bin/bash", "block.sh", None) == {"executable": "/bin/bash", "arguments": "block.sh",
                                                             "transfer_executable": "false"}
    assert job_executable("/usr/bin/env", "python -m snakemake --x", WRAPPER) == {
        "executable": WRAPPER, "arguments": "/usr/bin/env python -m snakemake --x", "transfer_executable": "true"}


def test_snakemake_jobs_on_a_pool_without_shared_filesystem_run_the_nodes_python(rendered):
    """The upstream plugin made the driver's venv Python the executable, which HTCondor transferred alone to a node
    without its venv; the job now runs the node's `python` and nothing of the driver's environment is shipped."""
    for case in (f"resources--{INFN}--snakemake", f"wordfreq--{INFN}--snakemake"):
        for path in submit_files(rendered[case]):
            parsed = htcondor2.Submit(path.read_text())
            assert parsed["executable"] == "/usr/bin/env", path.name
            assert parsed["arguments"].startswith("python -m snakemake "), path.name
            assert parsed["transfer_executable"] == "false", path.name
            assert sys.executable not in path.read_text() and str(Path(sys.executable).parent) not in path.read_text()


@pytest.mark.parametrize("case", [c for c in CASE_IDS if c.endswith("--snakemake")])
def test_no_storage_plugin_settings_reach_a_pool_without_an_object_store(rendered, case):
    """Snakemake passes every installed storage plugin's settings to each job (`--storage-s3-retries 5`, the default
    region as SNAKEMAKE_STORAGE_S3_REGION in `environment`); no HTCondor pool of portaflow's has an object store."""
    for path in submit_files(rendered[case]):
        parsed = htcondor2.Submit(path.read_text())
        assert "--storage-" not in parsed["arguments"] and "--default-storage" not in parsed["arguments"], path.name
        assert "SNAKEMAKE_STORAGE" not in parsed.get("environment", ""), path.name


def test_parsl_blocks_carry_no_storage_settings_either(rendered):
    """The same rule on Parsl (which never passed any: this guards it)."""
    for case in (c for c in CASE_IDS if c.endswith("--parsl")):
        for path in submit_files(rendered[case]):
            assert "STORAGE" not in path.read_text() and "storage-s3" not in path.read_text(), path.name


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory) -> dict[str, Path]:
    """resources.yaml rendered with a job wrapper: on the shared-filesystem pool by both engines, and by Snakemake on
    the pool without one."""
    out = {}
    for site, engine in ((CERN, "parsl"), (CERN, "snakemake"), (INFN, "snakemake")):
        out_dir = tmp_path_factory.mktemp(f"wrapped-{site}-{engine}") / "render"
        # with DESY NAF's other settings of issue 16 (two runtime attributes, getenv names), for the engines' comparison
        desy = ["--site-set", "htcondor.runtime_attribute=[RequestRuntime, MaxRuntime]", "--site-set", "htcondor.getenv=[X509_USER_PROXY]"]
        result = run_portaflow("render", str(RESOURCES), "--site", site, "--site-set", f"htcondor.job_wrapper={WRAPPER}", *desy,
                               "--engine", engine, "-o", str(out_dir), "--workdir", WORKDIR, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        out[f"{site}--{engine}"] = out_dir
    return out


def test_every_job_of_both_engines_runs_through_the_job_wrapper(wrapped):
    """The wrapper is each job's executable (transferred), the engine's own command its arguments: Parsl's
    `/bin/bash <block script>`, Snakemake's Python (the driver's on a shared filesystem, the node's without one)."""
    _, plan = plan_for(RESOURCES, CERN)
    for key, out_dir in wrapped.items():
        engine = key.rsplit("--", 1)[1]
        texts = []
        for task in plan.tasks:
            path = description_for(out_dir, engine, task)
            parsed = htcondor2.Submit(path.read_text())
            assert parsed["executable"] == WRAPPER and parsed["transfer_executable"] == "true", (key, path.name)
            arguments = parsed["arguments"]
            if engine == "parsl":
                assert arguments == "/bin/bash $Fnx(transfer_input_files)", key
            elif key.startswith(INFN):
                assert arguments.startswith("/usr/bin/env python -m snakemake "), key
            else:
                assert arguments.startswith(f"{sys.executable} -m snakemake "), key
            texts.append(path.read_text())
        if _job_ads_available():
            continue
        for task, ad in zip(plan.tasks, job_ads(texts), strict=True):  # as condor_submit's own code expands them
            assert ad["Cmd"] == WRAPPER and "TransferExecutable" not in ad, key  # absent: transferred (the default)
            if engine == "parsl":
                script = description_for(out_dir, engine, task).with_suffix(".sh").name
                assert ad["Args"] == f"/bin/bash {script}", key


def test_the_job_wrapper_is_checked_when_a_run_starts(tmp_path):
    missing = HTCondorScheduler(load_site(CERN, {"htcondor.job_wrapper": str(tmp_path / "nowhere.sh")}))
    assert missing.connection_problems() == [f"site example-cern-htcondor: htcondor.job_wrapper {tmp_path / 'nowhere.sh'} is not "
                                             "an executable file on this host (condor_submit transfers it from here as every job's "
                                             "executable)"]


@pytest.mark.parametrize("value", ["wrap.sh", "$HOME/wrap.sh", "~/wrap.sh", "/a b/wrap.sh", "/opt/x/", "/opt/../wrap.sh", "/a,b.sh"])
def test_a_bad_job_wrapper_is_refused_at_validate(tmp_path, value):
    profile = _profile(tmp_path, f"htcondor:\n  job_wrapper: '{value}'\n")
    result = run_portaflow("validate", str(profile), cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert "pool.yaml:4:16: htcondor.job_wrapper: " in result.stderr and "expected the absolute path of a script" in result.stderr


def test_both_engines_send_the_same_wrapper_runtimes_and_getenv(wrapped, monkeypatch):
    """Issue 16's HTCondor fields (job wrapper, several runtime attributes, getenv names) in the job ClassAds condor_submit
    would build from each engine's description: equal for every task."""
    if reason := _job_ads_available():
        pytest.skip(reason)
    compared = ("Cmd", "RequestRuntime", "MaxRuntime", "JobFlavour", "RequestCpus", "RequestMemory", "RequestGPUs")
    monkeypatch.setenv("X509_USER_PROXY", "/tmp/x509up_u1000")  # getenv copies it from the submitting shell into Environment
    _, plan = plan_for(RESOURCES, CERN)
    ads = {engine: job_ads([description_for(wrapped[f"{CERN}--{engine}"], engine, task).read_text() for task in plan.tasks])
           for engine in ("parsl", "snakemake")}
    for task, parsl_ad, snakemake_ad in zip(plan.tasks, ads["parsl"], ads["snakemake"], strict=True):
        parsl, snakemake = ({k: ad.get(k) for k in compared} for ad in (parsl_ad, snakemake_ad))
        assert parsl == snakemake, task.id
        assert parsl["Cmd"] == WRAPPER and parsl["RequestRuntime"] == parsl["MaxRuntime"] == task.resources.walltime_s
        for ad in (parsl_ad, snakemake_ad):
            assert "X509_USER_PROXY=/tmp/x509up_u1000" in str(ad.get("Environment")), ad.get("Environment")
