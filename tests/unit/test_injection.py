"""Workflow and profile values can never become code, in every format portaflow writes (issue 14).

Each target format gets values with newlines, quotes, `$()`, backticks, braces and `%`: the Snakefile (listed by
Snakemake itself, which executes it as Python), the job shell (run with bash), SLURM job scripts and the SLURM
plugin's sbatch words, HTCondor submit descriptions (HTCondor's parser), Kubernetes manifests (YAML), and the run's
manifest (tests/e2e/test_injection_runs.py). A canary file that a successful injection would create never appears.
Values that reach job options from a site profile (account, qos, reservation, accounting group, constraints, extra
directives, environment variable names) are refused with file:line; a credential given as a value is refused without
being repeated. Steps without outputs and braces in paths are refused by `validate` as by `plan`, with file:line.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from portaflow import driver
from portaflow.cli import cli
from portaflow.errors import SpecError
from portaflow.plan import make_plan
from portaflow.safetext import one_line
from portaflow.schedulers import adapter_for
from portaflow.spec.loading import load_site, load_workflow

from testlib import ROOT

os.environ.setdefault("CONDOR_CONFIG", "/dev/null")  # HTCondor's parser needs no pool configuration


def evil_values(canary: Path) -> list[str]:
    """Values a careless generator would execute: each tries to create `canary`."""
    c = str(canary)
    return [
        f'x\nimport os; os.system("touch {c}")\nrule zz:\n    #',  # ends a Snakefile comment and adds Python and a rule
        f"'; touch {c}; echo '",
        f'"; touch {c}; echo "',
        f"$(touch {c})",
        f"`touch {c}`",
        f"{{touch}} {{{{{c}}}}} {{0}} }}{{",
        f"%(x)s %s %n %% touch {c}",
        f"a\\b\r\x0bc\u2028d; touch {c}",
    ]


def evil_workflow(tmp_path: Path, values: list[str]) -> Path:
    """One step per value: the value scattered (so it is in the task's display, a Snakefile comment), in the command and in
    an environment variable's value; each step writes what it received, literally."""
    steps, params = {}, {}
    for n, value in enumerate(values):
        params[f"v{n}"] = [value]
        steps[f"s{n}"] = {
            "scatter": {f"w{n}": f"{{v{n}}}"},
            "command": f"printf '%s|%s' {{w{n}}} \"$PF_VALUE\" > {{outputs.out}}",
            "env": {"PF_VALUE": f"{{w{n}}}"},
            "outputs": {"out": f"out/s{n}.txt"},
        }
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump({"name": "evil", "parameters": params, "steps": steps}, sort_keys=False))
    return path


def all_in_one(canary: Path) -> list[str]:
    """Every evil value in one (for the slower renders, one task)."""
    return ["".join(evil_values(canary))]


def render(tmp_path: Path, workflow: Path, site: str, engine: str, workdir: Path | None = None) -> tuple[Path, list[Path], list[str]]:
    """What `portaflow render` writes; and the task ids, in order."""
    loaded_site = load_site(site, environ={})
    adapter_for(loaded_site).check()
    plan = make_plan(load_workflow(workflow).workflow, loaded_site.site)
    out = tmp_path / f"render-{site}-{engine}"
    return out, driver.render(plan, loaded_site, engine, out, workdir or tmp_path / "wd"), [t.id for t in plan.tasks]


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "CANARY"


# -- the Snakefile -------------------------------------------------------------------------------------------------
def test_one_line_keeps_a_comment_one_line():
    assert one_line("a\nb\r\x00\u2028c d") == "a\\nb\\r\\x00\\u2028c d"
    assert len(("# " + one_line("x\nimport os\n#\x85\u2029")).splitlines()) == 1


def test_the_snakefile_holds_values_only_as_data(tmp_path, canary):
    """Snakemake executes the Snakefile (as Python) to list its rules: exactly portaflow's rules, nothing run."""
    values = evil_values(canary)
    out, _, ids = render(tmp_path, evil_workflow(tmp_path, values), "local", "snakemake")
    snakefile = (out / "Snakefile").read_text()
    comments = [line for line in snakefile.splitlines() if line.lstrip().startswith("# evil") or line.startswith("    # s")]
    assert len(comments) == len(values), "a value split a comment into several lines"
    listed = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(out / "Snakefile"), "--list-rules",
                             "--directory", str(tmp_path / "wd")], capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {"portaflow_all", *ids}
    assert not canary.exists(), "the Snakefile ran a parameter's text"


def test_step_names_are_snakemake_rule_names(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("name: hy\nsteps:\n  my-step:\n    command: touch {outputs.o}\n    outputs: {o: o.txt}\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4:" in result.stderr and "step name 'my-step'" in result.stderr and "Snakemake rule name" in result.stderr


def test_scatter_variables_with_hyphens_still_make_rule_names(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("name: t\nsteps:\n  a:\n    scatter: {my-var: [1, 2]}\n    command: touch {outputs.o}\n    outputs: {o: 'o-{my-var}.txt'}\n")
    plan = make_plan(load_workflow(path).workflow, load_site("local", environ={}).site)
    assert [t.id for t in plan.tasks] == ["a__my_var_1", "a__my_var_2"]


def test_long_scatter_values_make_short_distinct_task_ids(tmp_path):
    path = tmp_path / "wf.yaml"
    long = ["x" * 200 + "/" + "y" * 100 + "a", "x" * 200 + "/" + "y" * 100 + "b"]  # each path component < 255 bytes
    path.write_text(yaml.safe_dump({"name": "t", "steps": {"a": {"scatter": {"v": long}, "command": "touch {outputs.o}",
                                                                 "outputs": {"o": "o-{v}.txt"}}}}))
    ids = [t.id for t in make_plan(load_workflow(path).workflow, load_site("local", environ={}).site).tasks]
    assert len(set(ids)) == 2 and all(len(i) <= 120 for i in ids), ids


def test_a_file_name_too_long_for_a_filesystem_is_refused(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(f"name: t\nparameters: {{p: {'x' * 300}}}\nsteps:\n  a:\n    command: touch {{outputs.o}}\n    outputs: {{o: 'o-{{p}}'}}\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and f"{path}:6:" in result.stderr and "longer than 255 bytes" in result.stderr, result.stderr


# -- the job shell (both engines run the same text) ----------------------------------------------------------------
def test_the_job_shell_runs_values_as_data(tmp_path, canary):
    values = evil_values(canary)
    out, files, ids = render(tmp_path, evil_workflow(tmp_path, values), "local", "parsl")
    (tmp_path / "wd" / "out").mkdir(parents=True)
    for n, (value, task_id) in enumerate(zip(values, ids, strict=True)):
        script = out / "apps" / f"{task_id}.sh"
        assert script in files
        subprocess.run(["bash", str(script)], check=True, timeout=60, capture_output=True)
        assert (tmp_path / "wd" / "out" / f"s{n}.txt").read_bytes().decode() == f"{value}|{value}"
    assert not canary.exists()


# -- SLURM: job scripts and the plugin's sbatch command line ------------------------------------------------------
def test_slurm_job_scripts_carry_no_workflow_value(tmp_path, canary):
    values = evil_values(canary)
    out, files, _ = render(tmp_path, evil_workflow(tmp_path, values), "example-hpc-mem-per-cpu", "parsl")
    scripts = [f for f in files if f.suffix == ".sbatch"]
    assert scripts
    for script in scripts:
        text = script.read_text()
        subprocess.run(["bash", "-n", str(script)], check=True)  # the script is valid shell
        options = [line for line in text.splitlines() if line.startswith("#SBATCH")]
        assert options and not any(str(canary) in line for line in options)
        for line in options:
            assert len(shlex.split(line[len("#SBATCH"):])) == 1, line  # one option per line, nothing riding along
    assert not canary.exists()


ONE_WORD_KEYS = ["account", "slurm.qos", "slurm.reservation"]
ONE_LINE_KEYS = ["slurm.constraint", "partitions.cpu.constraint", "slurm.gpu_syntax", "environment.modules", "extra_directives"]
NEW_LINES = ["x\n#SBATCH --account=other", "x\rz", "x\u2028y"]
SHELL_TEXT = ["x; touch /tmp/pf-canary", "$(touch /tmp/pf-canary)", "`id`", "a b", "x'y"]


@pytest.mark.parametrize("key, value", [(k, v) for k in ONE_WORD_KEYS for v in NEW_LINES + SHELL_TEXT]
                         + [(k, v) for k in ONE_LINE_KEYS for v in NEW_LINES])
def test_slurm_profile_values_that_would_change_a_job_are_refused(key, value):
    """Accounts, qos and reservations are one plain word; constraints, GPU templates, module names and extra directives
    (which may hold shell characters, quoted wherever a shell reads them) are one line."""
    listed = key in ("extra_directives", "environment.modules")
    val = [value] if listed else (value + " {n}" if key == "slurm.gpu_syntax" else value)
    with pytest.raises(SpecError) as err:
        loaded = load_site("example-hpc-mem-per-cpu", {key: json.dumps(val)}, environ={})
        adapter_for(loaded).check()
    assert key.split(".")[-1] in str(err.value)
    assert "example-hpc-mem-per-cpu.yaml" in str(err.value)


@pytest.mark.parametrize("directive, why", [
    ("--comment=x --account=other", "not one sbatch option"),
    ("--comment=x\n#SBATCH --account=other", "new line"),
    ("--acc=other", "sets --account"),
    ("-Aother", "sets -A"),
    ("-p gpu", "sets -p"),
    ("--comment='a b'", "not one sbatch option"),
])
def test_a_managed_flag_cannot_be_smuggled_in_an_extra_directive(directive, why):
    with pytest.raises(SpecError) as err:
        loaded = load_site("example-hpc-mem-per-cpu", {"extra_directives": json.dumps([directive])}, environ={})
        adapter_for(loaded).check()
    assert why in str(err.value), str(err.value)
    assert "example-hpc-mem-per-cpu.yaml:" in str(err.value) or "extra_directives" in str(err.value)


def test_the_slurm_plugin_gets_each_extra_word_quoted():
    """Snakemake's SLURM plugin pastes slurm_extra into a shell command: every word arrives as one word."""
    from portaflow.schedulers.slurm.snakemake import rule_resources

    extras = ["--exclude=node[01-05]", "--mail-type=END", "--signal=B:USR1@60", "--licenses=a;b|c&d"]
    loaded = load_site("example-hpc-mem-per-cpu", {"extra_directives": json.dumps(extras), "slurm.reservation": "maint_1"},
                       environ={})
    scheduler = adapter_for(loaded)
    scheduler.check()
    wf = load_workflow(ROOT / "workflows" / "examples" / "wordfreq.yaml").workflow
    task = make_plan(wf, loaded.site).tasks[0]
    assert shlex.split(rule_resources(scheduler, task)["slurm_extra"]) == ["--reservation=maint_1", *extras]


# -- HTCondor submit descriptions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_htcondor_submit_descriptions_parse_and_hold_no_value_as_a_command(tmp_path, canary, engine):
    htcondor2 = pytest.importorskip("htcondor2")
    from portaflow.schedulers.htcondor.commands import is_documented_command

    out, files, _ = render(tmp_path, evil_workflow(tmp_path, all_in_one(canary)), "example-cern-htcondor", engine)
    subs = [f for f in files if f.suffix == ".sub"]
    assert subs
    for sub in subs:
        parsed = htcondor2.Submit(sub.read_text())
        assert all(is_documented_command(key) for key in parsed.keys()), sorted(parsed.keys())
        assert not any(str(canary) in key for key in parsed.keys())
    assert not canary.exists()


@pytest.mark.parametrize("key, value", [
    ("htcondor.accounting_group", "group_u_x.u\nrequirements = True"),
    ("htcondor.accounting_group", "group $(Owner)"),
    ("htcondor.accounting_group_user", 'me"'),
    ("htcondor.requirements", "True\n+Evil = 1"),
    ("htcondor.runtime_attribute", "MaxRuntime = 1\n+Evil"),
    ("htcondor.credentials.token_file_env", "X; touch /tmp/pf-canary"),
    ("extra_directives", ['+WantOS = "el9"\nexecutable = /bin/evil']),
])
def test_htcondor_profile_values_that_would_change_a_submit_description_are_refused(key, value):
    with pytest.raises(SpecError) as err:
        loaded = load_site("example-cern-htcondor", {key: json.dumps(value)}, environ={})
        adapter_for(loaded).check()
    assert key.split(".")[-1] in str(err.value)


# -- Kubernetes manifests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("site, engine", [("example-egi-cloud-k8s", "parsl"), ("example-cloud-gpu-k8s", "snakemake")])
def test_kubernetes_manifests_stay_valid_yaml(tmp_path, canary, site, engine):
    pytest.importorskip("kubernetes")
    out, files, _ = render(tmp_path, evil_workflow(tmp_path, all_in_one(canary)), site, engine, Path("/data/evil"))
    manifests = [f for f in files if f.suffix in (".yaml", ".yml") and "profile" not in f.parts]
    for path in manifests:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert all(isinstance(d, dict) and d.get("kind") for d in docs), path
    assert not canary.exists()


# -- environment variable names -------------------------------------------------------------------------------------
def _validate(tmp_path: Path, name: str, text: str, *extra: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path, CliRunner().invoke(cli, ["validate", str(path), *extra])


@pytest.mark.parametrize("name", ["A=1; touch /tmp/pf-canary; B", "1ABC", "A B", "A-B", "A\nB", ""])
def test_step_environment_names_are_names(tmp_path, name):
    path, result = _validate(tmp_path, "wf.yaml", f"""\
        name: t
        steps:
          a:
            command: touch {{outputs.o}}
            env: {json.dumps({name: "v"})}
            outputs: {{o: o.txt}}
        """)
    assert result.exit_code == 2, result.output
    assert f"{path}:5:" in result.stderr and "not an environment variable name" in result.stderr, result.stderr


@pytest.mark.parametrize("section, value", [("environment", 'env: {"A=1; touch /tmp/pf-canary; B": v}'),
                                            ("container", 'env_passthrough: ["A; touch /tmp/pf-canary"]')])
def test_site_environment_names_are_names(tmp_path, section, value):
    path, result = _validate(tmp_path, "site.yaml", f"""\
        name: s
        scheduler: local
        partitions:
          p: {{max_walltime: 1h, cores_per_node: 1, memory_per_node: 1GB}}
        {section}:
          {value}
        """)
    assert result.exit_code == 2, result.output
    assert f"{path}:6:" in result.stderr and "not an environment variable name" in result.stderr, result.stderr


# -- secrets --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["API_TOKEN", "aws_secret_access_key", "DB_PASSWORD", "MY_KEY"])
def test_a_credential_given_as_a_value_is_refused_without_repeating_it(name):
    secret = "s3cr3t-Value-42"
    with pytest.raises(SpecError) as err:
        load_site("local", {f"environment.env.{name}": secret}, environ={})
    message = str(err.value)
    assert secret not in message
    assert name in message and "export" in message and "env_passthrough" in message
    with pytest.raises(SpecError) as err:
        load_site("local", {"environment.env": json.dumps({name: secret})}, environ={})
    assert secret not in str(err.value)
    with pytest.raises(SpecError) as err:
        load_site("local", environ={f"PORTAFLOW_SITE_ENVIRONMENT__ENV__{name.upper()}": secret})
    assert secret not in str(err.value)


def test_ordinary_environment_values_are_still_accepted():
    site = load_site("local", {"environment.env.OMP_PLACES": "cores"}, environ={}).site
    assert site.environment.env == {"OMP_PLACES": "cores"}


def test_a_refused_credential_stops_the_run_before_anything_is_written(tmp_path):
    result = CliRunner().invoke(cli, ["run", str(ROOT / "workflows" / "examples" / "wordfreq.yaml"), "--workdir", str(tmp_path / "wd"),
                                      "--site-set", "environment.env.GITLAB_TOKEN=glpat-s3cr3t"])
    assert result.exit_code == 2
    assert "glpat-s3cr3t" not in result.output + result.stderr
    assert not (tmp_path / "wd").exists()


# -- the engines agree on edge cases, and validate refuses what plan refuses --------------------------------------
def test_a_step_without_outputs_is_refused_with_its_line(tmp_path):
    path, result = _validate(tmp_path, "wf.yaml", """\
        name: t
        steps:
          a:
            command: echo hi
        """)
    assert result.exit_code == 2
    assert f"{path}:4:" in result.stderr and "a step needs at least one output" in result.stderr, result.stderr


@pytest.mark.parametrize("where, text, line", [
    ("output as written", "outputs: {o: 'x{{y}}.txt'}", 6),
    ("output from a parameter", "outputs: {o: 'out/{p}.txt'}", 6),
    ("input from a parameter", "inputs: {i: 'in/{p}.txt'}\n    outputs: {o: o.txt}", 6),
])
def test_braces_in_a_path_are_refused_by_validate_and_plan(tmp_path, where, text, line):
    body = f"""\
name: t
parameters: {{p: "a{{b}}"}}
steps:
  a:
    command: touch {{outputs.o}}
    {text}
"""
    path = tmp_path / "wf.yaml"
    path.write_text(body)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, (where, result.output)
    assert f"{path}:{line}:" in result.stderr and "brace" in result.stderr and "wildcard" in result.stderr, result.stderr
    planned = CliRunner().invoke(cli, ["plan", str(path)])
    assert planned.exit_code == 2 and f"{path}:{line}:" in planned.stderr, planned.stderr


@pytest.mark.parametrize("steps, line, message", [
    ("a: {command: 'touch {outputs.o}', inputs: {i: b.txt}, outputs: {o: a.txt}}\n"
     "  b: {command: 'touch {outputs.o}', inputs: {i: a.txt}, outputs: {o: b.txt}}", 3, "cycle"),
    ("a: {command: 'touch {outputs.o}', inputs: {i: a.txt}, outputs: {o: a.txt}}", 3, "both an input and an output"),
    ("a: {command: 'touch {outputs.o}', outputs: {o: x.txt}}\n  b: {command: 'touch {outputs.o}', outputs: {o: x.txt}}", 4,
     "both write x.txt"),
    ("a: {command: 'touch {outputs.o}', scatter: {s: [1, 1]}, outputs: {o: 'x{s}.txt'}}", 3, "repeated values"),
    ("a: {command: 'touch {outputs.o} {nope}', outputs: {o: x.txt}}", 3, "unknown field {nope}"),
    ("a: {command: 'mkdir {outputs.d}', outputs: {d: {path: d, directory: true}}}\n"
     "  b: {command: 'touch {outputs.o}', outputs: {o: d/x.txt}}", 4, "is inside d, an output of a"),
])
def test_validate_refuses_what_plan_refuses_with_file_line(tmp_path, steps, line, message):
    path = tmp_path / "wf.yaml"
    path.write_text(f"name: t\nsteps:\n  {steps}\n")
    for command in ("validate", "plan"):
        result = CliRunner().invoke(cli, [command, str(path)])
        assert result.exit_code == 2, (command, result.output)
        assert f"{path}:{line}:" in result.stderr and message in result.stderr, (command, result.stderr)


def test_validate_with_a_site_checks_that_each_step_fits(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("name: t\nsteps:\n  a:\n    command: touch {outputs.o}\n    outputs: {o: x.txt}\n    resources: {gpus: 4}\n")
    assert CliRunner().invoke(cli, ["validate", str(path)]).exit_code == 0
    result = CliRunner().invoke(cli, ["validate", str(path), "--site", "local"])
    assert result.exit_code == 2
    assert f"{path}:6:" in result.stderr and "needs 4 GPUs" in result.stderr and "on site local" in result.stderr, result.stderr


def test_a_container_cache_dir_expands_variables_but_runs_nothing(tmp_path):
    """container.cache_dir is written so that `$SCRATCH` expands in the job; a command substitution in it stays text."""
    from portaflow.spec.variables import shell_word

    canary = tmp_path / "CANARY"
    for value, expected in [("$SCRATCH/cache", "/s/cache"), ("${SCRATCH}/c", "/s/c"), (f"$(touch {canary})", f"$(touch {canary})"),
                            (f"${{X:-$(touch {canary})}}", f"${{X:-$(touch {canary})}}"), (f"`touch {canary}`\"", f"`touch {canary}`\"")]:
        echoed = subprocess.run(["bash", "-c", f"SCRATCH=/s; printf '%s' {shell_word(value)}"], capture_output=True, text=True)
        assert echoed.stdout == expected
    assert not canary.exists()


def test_a_task_snakemake_never_ran_is_reported_with_snakemake_s_own_error(tmp_path):
    """When Snakemake stops on its own (here: a Snakefile it refuses), no task is blamed on 'a task it depends on failed':
    the report quotes Snakemake's error."""
    from portaflow.engines.snakemake_engine import SnakemakeEngine
    from portaflow.schedulers.context import RunContext

    class RefusedSnakefile(SnakemakeEngine):
        def snakefile(self, ctx):
            return super().snakefile(ctx) + "\nrule broken:\n    output: 'x'\n    shell: 'true'\n    nonsense_keyword: 1\n"

    path = tmp_path / "wf.yaml"
    path.write_text("name: t\nsteps:\n  a:\n    command: touch {outputs.o}\n    outputs: {o: o.txt}\n")
    loaded = load_site("local", environ={})
    plan = make_plan(load_workflow(path).workflow, loaded.site)
    run_dir = tmp_path / "wd" / ".portaflow" / "runs" / "r"
    run_dir.mkdir(parents=True)
    ctx = RunContext(plan, loaded, tmp_path / "wd", run_dir, plan.tasks, adapter_for(loaded), run_id="r")
    outcome = RefusedSnakefile().execute(ctx)["a"]
    assert not outcome.ok
    assert "Snakemake stopped before running it: SyntaxError" in outcome.message and "rule broken" in outcome.message, outcome.message
    assert "a task it depends on failed" not in outcome.message


def test_a_credential_written_in_a_profile_file_is_refused_at_its_line(tmp_path):
    """Issue 14: a profile *file* holding a credential's value (not only --site-set) is refused with file:line, the
    value is never repeated, and the message says to pass it by the variable's name; a profile that extends it
    is refused at the parent's line."""
    secret = "glpat-s3cr3t-Value-42"
    parent = tmp_path / "parent.yaml"
    parent.write_text(f"extends: local\nenvironment:\n  env:\n    OMP_PLACES: cores\n    GITLAB_TOKEN: {secret}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\naccount: x\n")
    for path in (parent, child):
        with pytest.raises(SpecError) as err:
            load_site(str(path), environ={})
        message = str(err.value)
        assert f"{parent}:5:" in message, message
        assert secret not in message
        assert "GITLAB_TOKEN" in message and "environment variable's name" in message and "export GITLAB_TOKEN" in message
    result = CliRunner().invoke(cli, ["validate", str(ROOT / "workflows" / "examples" / "wordfreq.yaml"), "--site", str(parent)])
    assert result.exit_code == 2 and f"{parent}:5:" in result.stderr and secret not in result.output + result.stderr, result.output
    parent.write_text("extends: local\nenvironment:\n  env:\n    OMP_PLACES: cores\n")
    assert load_site(str(child), environ={}).site.environment.env == {"OMP_PLACES": "cores"}
