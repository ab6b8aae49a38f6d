"""The command line as a user meets it: messages, exit codes, no tracebacks."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from testlib import ROOT, WORKFLOWS, run_portaflow

WORDFREQ = str(WORKFLOWS / "examples" / "wordfreq.yaml")


def test_validate_reports_location_and_exits_2(write, tmp_path):
    bad = write("bad.yaml", "name: demo\nsteps:\n  a:\n    comand: echo\n")
    result = run_portaflow("validate", str(bad), WORDFREQ)
    assert result.returncode == 2
    assert f"{bad}:4:5: steps.a.comand: unknown key (did you mean 'command'?)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wordfreq.yaml: ok" in result.stdout


def test_debug_shows_traceback(write):
    bad = write("bad.yaml", "name: demo\nsteps: {a: {comand: echo}}\n")
    result = run_portaflow("--debug", "run", str(bad))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_run_bad_input_submits_nothing(tmp_path):
    result = run_portaflow("run", WORDFREQ, "--workdir", str(tmp_path / "w"), "--param", "shards=many")
    assert result.returncode == 2
    assert "parameter 'shards' expects int" in result.stderr
    assert not (tmp_path / "w").exists()


def test_plan_rejection_exit_2(tmp_path):
    result = run_portaflow("plan", str(ROOT / "tests/data/workflows/resources.yaml"), "--site", "local",
                           "--site-set", "partitions.local.gpus_per_node=0")
    assert result.returncode == 2
    assert "step train needs 2 GPUs; partition local has no GPUs" in result.stderr


def test_plan_table_and_json():
    result = run_portaflow("plan", WORDFREQ, "--site", "slurm-local", "--param", "shards=2")
    assert result.returncode == 0, result.stderr
    assert "make_text[shard=1]" in result.stdout and "--partition=cpu" in result.stdout
    result = run_portaflow("plan", WORDFREQ, "--site", "slurm-local", "--json")
    tasks = json.loads(result.stdout)
    assert [t["id"] for t in tasks][-1] == "merge" and tasks[-1]["depends"] == ["count__shard_0", "count__shard_1", "count__shard_2"]


def test_dry_run_lists_tasks_and_runs_nothing(tmp_path):
    result = run_portaflow("run", WORDFREQ, "--dry-run", "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "dry run: 7 of 7 task(s) would run" in result.stdout
    assert not (tmp_path / "results").exists()


def test_sites_lists_shipped_profiles():
    result = run_portaflow("sites")
    assert result.returncode == 0
    for name in ("local", "slurm-local", "example-hpc-mem-per-cpu"):
        assert name in result.stdout


def test_schema_is_json_schema():
    for kind, field in (("workflow", "steps"), ("site", "partitions")):
        result = run_portaflow("schema", kind)
        schema = json.loads(result.stdout)
        assert field in schema["properties"]


def test_unknown_site(tmp_path):
    result = run_portaflow("plan", WORDFREQ, "--site", "slurm-locl")
    assert result.returncode == 2 and "did you mean 'slurm-local'" in result.stderr


def test_params_file_and_param_precedence(write):
    params = write("params.yaml", "shards: 5\ntop: 4\n")
    result = run_portaflow("plan", WORDFREQ, "--params-file", str(params), "--param", "top=2", "--json")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)
    assert len(tasks) == 5 + 5 + 1
    bad = write("bad.yaml", "shardz: 5\n")
    result = run_portaflow("plan", WORDFREQ, "--params-file", str(bad))
    assert result.returncode == 2 and "unknown parameter 'shardz'" in result.stderr and "did you mean 'shards'" in result.stderr


def test_site_requiring_an_account_says_how_to_set_one():
    result = run_portaflow("plan", WORDFREQ, "--site", "example-lumi-g")
    assert result.returncode == 2
    assert "requires an account" in result.stderr and "--site-set account=" in result.stderr
    result = run_portaflow("plan", WORDFREQ, "--site", "example-lumi-g", env={"PORTAFLOW_SITE_ACCOUNT": "project_465000000"})
    assert result.returncode == 0, result.stderr
    assert "--account=project_465000000" in result.stdout and "--partition=small " in result.stdout


def test_preset_then_params_file_then_param(write):
    # wordfreq's `small` preset: shards 2; the file and --param win over it, in that order
    result = run_portaflow("plan", WORDFREQ, "--preset", "small", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2 + 2 + 1
    params = write("params.yaml", "shards: 4\n")
    result = run_portaflow("plan", WORDFREQ, "--preset", "small", "--params-file", str(params), "--json")
    assert len(json.loads(result.stdout)) == 4 + 4 + 1
    result = run_portaflow("plan", WORDFREQ, "--preset", "small", "--params-file", str(params), "--param", "shards=3", "--json")
    assert len(json.loads(result.stdout)) == 3 + 3 + 1
    result = run_portaflow("plan", WORDFREQ, "--preset", "huge")
    assert result.returncode == 2 and "no preset 'huge' (presets: small)" in result.stderr


def test_preset_naming_an_unknown_parameter_is_a_spec_error(write):
    bad = write("wf.yaml", "name: demo\nparameters: {n: 1}\npresets:\n  small: {m: 2}\nsteps: {a: {command: 'echo {n} > x', outputs: {x: x}}}\n")
    result = run_portaflow("validate", str(bad))
    assert result.returncode == 2
    assert "presets.small: sets m, which is not among the parameters (n)" in result.stderr


def test_every_shipped_profile_validates():
    profiles = sorted(str(p) for p in (ROOT / "site_profiles").glob("*.yaml"))
    result = run_portaflow("validate", *profiles)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (site profile") == len(profiles)


def test_missing_container_runtime_stops_the_run_before_submission(tmp_path):
    hep = str(WORKFLOWS / "hep" / "zmumu.yaml")
    result = run_portaflow("run", hep, "--site", "local-podman", "--site-set", "container.executable=/nonexistent/podman",
                           "--workdir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("step generate: container 'hep' needs runtime podman (/nonexistent/podman), which site local-podman expects "
            "but is not on PATH") in result.stderr
    assert not (tmp_path / ".portaflow" / "runs").exists()


# -- logging flags and error reporting -------------------------------------------------------------

def test_verbose_shows_decisions_and_default_does_not(tmp_path):
    quiet_default = run_portaflow("run", WORDFREQ, "--dry-run", "--workdir", str(tmp_path))
    assert quiet_default.returncode == 0, quiet_default.stderr
    assert "site local (scheduler local) from" not in quiet_default.stderr
    verbose = run_portaflow("-v", "run", WORDFREQ, "--dry-run", "--workdir", str(tmp_path))
    assert verbose.returncode == 0, verbose.stderr
    assert "site local (scheduler local) from" in verbose.stderr
    assert "7 of 7 task(s) to run" in verbose.stderr and "merge: no record of an earlier run" in verbose.stderr
    assert "DEBUG" not in verbose.stderr and "preflight: scheduler connection not checked" not in verbose.stderr
    assert "site local" not in verbose.stdout  # logs stay off stdout: results there can be piped
    assert verbose.stdout == quiet_default.stdout


def test_very_verbose_adds_debug_with_level_and_logger_name(tmp_path):
    result = run_portaflow("-vv", "run", WORDFREQ, "--dry-run", "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert " DEBUG portaflow.preflight: preflight: scheduler connection not checked" in result.stderr
    assert " INFO portaflow.driver: 7 of 7 task(s) to run" in result.stderr


def test_quiet_hides_warnings_but_not_errors(tmp_path, write):
    # a podman that has the image but cannot say its id: the run may go on, with a warning
    podman = write("bin/podman", '#!/bin/sh\n[ "$2" = exists ] && exit 0\necho "Error: inspect is broken" >&2; exit 1\n')
    podman.chmod(0o755)
    args = ("run", str(WORKFLOWS / "hep" / "zmumu.yaml"), "--site", "local-podman", "--site-set", f"container.executable={podman}",
            "--dry-run", "--workdir", str(tmp_path / "w"))
    default = run_portaflow(*args)
    assert default.returncode == 0, default.stderr
    assert "warning: image localhost/portaflow-hep:latest: digest unknown" in default.stderr
    assert "inspect is broken" in default.stderr
    quiet = run_portaflow("-q", *args)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout == default.stdout  # -q quiets stderr; the results are the same
    result = run_portaflow("-q", "run", WORDFREQ, "--param", "shards=many")
    assert result.returncode == 2 and result.stderr.startswith("error: parameter 'shards' expects int")
    result = run_portaflow("-q", "-v", "plan", WORDFREQ)
    assert result.returncode == 2 and "cannot be combined" in result.stderr


def test_debug_is_read_from_its_option_not_from_argv(write):
    bad = write("bad.yaml", "name: demo\nsteps: {a: {comand: echo}}\n")
    without = run_portaflow("run", str(bad), "--param", "x=--debug")  # '--debug' as a value is not the flag
    assert without.returncode == 2 and "Traceback" not in without.stderr
    with_debug = run_portaflow("--debug", "run", str(bad))
    assert with_debug.returncode == 2 and "Traceback" in with_debug.stderr and "SpecError" in with_debug.stderr
    assert with_debug.stderr.rstrip().splitlines()[-1].startswith("error: ")


@pytest.fixture
def cli_with_failing_command():
    """The real group (options, error handling) with one extra command whose external command fails."""
    from portaflow.cli import PortaflowGroup, cli
    from portaflow.commands import run_command

    group = PortaflowGroup(name="portaflow", params=cli.params, callback=cli.callback)

    @group.command()
    def boom() -> None:
        run_command([sys.executable, "-c", "import sys; print('the reason', file=sys.stderr); sys.exit(4)"])

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("portaflow").level)
    yield group
    root.handlers[:], root.level = saved[0], saved[1]
    logging.getLogger("portaflow").setLevel(saved[2])


@pytest.mark.parametrize("debug", [False, True])
def test_a_failed_command_is_a_clean_error_exit_1(cli_with_failing_command, debug):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli_with_failing_command, (["--debug"] if debug else []) + ["boom"])
    assert result.exit_code == 1
    assert "error: command failed (exit code 4): " in result.stderr and "stderr: the reason" in result.stderr
    assert ("Traceback" in result.stderr) is debug
