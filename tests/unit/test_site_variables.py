"""`$NAME` in site profile values (issue 16): the job's shell expands the site's variables on the node (scratch_dir,
binds, image_dir, images, cache_dir, environment.env), the workflow's values stay literal, `storage.work_dir` is
expanded by the driver and an unset variable there is exit 2 before anything is created; a bind named twice is
bound once."""

from __future__ import annotations

import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest

from portaflow.containers import container_call, site_binds, wrap
from portaflow.plan import make_plan
from portaflow.preflight import container_problems
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.spec.loading import load_site
from portaflow.spec.variables import UnsetVariable, expand_here, shell_word
from portaflow.spec.workflow import Workflow

from testlib import run_portaflow

NODE_ENV = {"PATH": "/usr/bin:/bin", "TMPDIR": "/node/tmp/job42", "PROJECT": "/p/proj1", "SCRATCH": "/s/u1", "HOME": "/home/u1"}
"""What a compute node's job sees (none of it is set where the profile was written)."""


def profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def on_node(line: str, env: dict[str, str] = NODE_ENV) -> str:
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(("value", "expanded"), [
    ("$TMPDIR", "/node/tmp/job42"),
    ("${PROJECT}/containers/hep.sif", "/p/proj1/containers/hep.sif"),
    ("$SCRATCH/a b/'q'\"d\"", "/s/u1/a b/'q'\"d\""),
    ("$(touch pwned)/`id`/$HOME*", "$(touch pwned)/`id`//home/u1*"),  # only $NAME is a variable: nothing runs, no glob
    ("/plain/path", "/plain/path"),
])
def test_a_site_value_expands_its_variables_where_it_runs_and_nothing_else(tmp_path, value, expanded):
    assert on_node(f"cd {shlex.quote(str(tmp_path))}; printf %s {shell_word(value)}") == expanded
    assert not (tmp_path / "pwned").exists()


def test_a_value_without_variables_is_quoted_as_before():
    assert shell_word("/data/x y") == shlex.quote("/data/x y")


def test_driver_side_expansion_names_every_unset_variable():
    assert expand_here("$SCRATCH/pf", {"SCRATCH": "/s"}) == "/s/pf"
    assert expand_here("~/pf", {"HOME": "/h"}) == "/h/pf"
    assert expand_here("${EMPTY}x", {"EMPTY": ""}) == "x"
    with pytest.raises(UnsetVariable) as exc:
        expand_here("$SCRATCH/$USER/x", {"USER": "u"})
    assert exc.value.names == ["SCRATCH"]


CONTAINER_SITE = """\
    name: vars
    scheduler: slurm
    partitions: {p: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}}
    container:
      runtime: apptainer
      executable: RUNTIME
      image_dir: $PROJECT/containers
      cache_dir: ${SCRATCH}/cache
      binds: [$TMPDIR, "/data", "/data:/data", "$PROJECT:/project:ro"]
    environment:
      env: {TOOL_HOME: "$PROJECT/tool", LITERAL: "/opt/x", PATH: "$PROJECT/bin:$PATH"}
    storage: {scratch_dir: $TMPDIR}
"""


def fake_runtime(tmp_path: Path) -> Path:
    """An `apptainer` that prints the arguments it was started with, one per line, and the variables it got."""
    fake = tmp_path / "apptainer"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho "cache=$APPTAINER_CACHEDIR"\n')
    fake.chmod(0o755)
    return fake


def test_container_binds_image_and_cache_expand_on_the_node_and_each_bind_appears_once(tmp_path):
    fake = fake_runtime(tmp_path)
    loaded = load_site(str(profile(tmp_path, CONTAINER_SITE.replace("RUNTIME", str(fake)))), environ={})
    site = loaded.site
    assert site_binds(site) == ["$TMPDIR", "/data", "$PROJECT:/project:ro"]  # scratch_dir $TMPDIR and /data:/data were repeats
    call = container_call(site, "hep")
    line = wrap("true", call, site, "/w", gpus=0, env_names=[])
    assert "'$" not in line  # no site variable is single-quoted into the job any more
    out = on_node(line).splitlines()
    binds = [out[i + 1] for i, word in enumerate(out) if word == "--bind"]
    assert binds == ["/w", "/node/tmp/job42", "/data", "/p/proj1:/project:ro"]
    assert "/p/proj1/containers/hep.sif" in out and out[-1] == "cache=/s/u1/cache"


def test_podman_volumes_expand_on_the_node(tmp_path):
    site = load_site(str(profile(tmp_path, CONTAINER_SITE.replace("apptainer", "podman").replace("RUNTIME", "podman"))), environ={}).site
    line = wrap("true", container_call(site, "hep"), site, "/w", gpus=0, env_names=[])
    words = shlex.split(line.replace("podman", "printf '%s\\n'", 1))
    assert words.count("--volume") == 4
    out = on_node(line.replace("podman", "printf '%s\\n'", 1)).splitlines()
    assert [out[i + 1] for i, w in enumerate(out) if w == "--volume"] == ["/w:/w", "/node/tmp/job42:/node/tmp/job42", "/data:/data",
                                                                         "/p/proj1:/project:ro"]


def test_site_env_expands_on_the_node_and_the_steps_env_stays_literal(tmp_path):
    loaded = load_site(str(profile(tmp_path, CONTAINER_SITE.replace("runtime: apptainer", "runtime: none"))), environ={})
    workflow = Workflow.model_validate({"name": "w", "steps": {"s": {
        "command": 'printf "%s|%s|%s|%s|%s" "$TOOL_HOME" "$LITERAL" "$PATH" "$STEP" "$PARAM" > {outputs.o}',
        "outputs": {"o": "o.txt"}, "env": {"STEP": "$TMPDIR/x", "PARAM": "{p}"}}}, "parameters": {"p": "$(id) $HOME"}})
    plan = make_plan(workflow, loaded.site)
    ctx = RunContext(plan, loaded, tmp_path, tmp_path / "run", plan.tasks, adapter_for(loaded))
    on_node(ctx.shell_line(plan.tasks[0]))
    assert (tmp_path / "o.txt").read_text() == "/p/proj1/tool|/opt/x|/p/proj1/bin:/usr/bin:/bin|$TMPDIR/x|$(id) $HOME"


def test_preflight_finds_an_image_under_a_variable_and_names_one_that_is_unset(tmp_path, monkeypatch):
    (tmp_path / "proj" / "containers").mkdir(parents=True)
    (tmp_path / "proj" / "containers" / "hep.sif").write_bytes(b"SIF")
    fake = fake_runtime(tmp_path)
    loaded = load_site(str(profile(tmp_path, CONTAINER_SITE.replace("RUNTIME", str(fake)))), environ={})
    workflow = Workflow.model_validate({"name": "w", "steps": {"s": {"command": "true", "outputs": {"o": "o.txt"}, "container": "hep"}}})
    plan = make_plan(workflow, loaded.site)
    monkeypatch.setenv("PROJECT", str(tmp_path / "proj"))
    assert container_problems(plan, loaded.site) == []
    monkeypatch.delenv("PROJECT")
    (problem,) = container_problems(plan, loaded.site)
    assert "$PROJECT/containers/hep.sif" in problem and "container.image_dir" in problem and "$PROJECT not set" in problem


WORKFLOW = """\
    name: w
    steps:
      s: {command: "echo hi > {outputs.o}", outputs: {o: o.txt}, resources: {cores: 1, memory: 100MB, walltime: 1m}}
"""


def test_unset_variable_in_work_dir_is_exit_2_with_the_key_and_nothing_created(tmp_path, monkeypatch):
    site = profile(tmp_path, """\
        name: laptop
        scheduler: local
        partitions: {local: {max_walltime: 1h, cores_per_node: 1, memory_per_node: 4GB}}
        storage:
          work_dir: $PF_TEST_SCRATCH/portaflow
    """)
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(WORKFLOW))
    before = sorted(tmp_path.rglob("*"))
    result = run_portaflow("run", "wf.yaml", "--site", str(site), cwd=tmp_path)  # PF_TEST_SCRATCH is not set
    assert result.returncode == 2, result.stderr
    assert f"{site}:5:" in result.stderr and "storage.work_dir" in result.stderr and "$PF_TEST_SCRATCH" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no '$PF_TEST_SCRATCH' directory, no work directory
    # set, the driver expands it
    from portaflow.driver import default_workdir

    loaded = load_site(str(site), environ={})
    plan = make_plan(Workflow.model_validate({"name": "w", "steps": {"s": {"command": "true", "outputs": {"o": "o"}}}}), loaded.site)
    monkeypatch.setenv("PF_TEST_SCRATCH", "/s/u1")
    assert default_workdir(plan, loaded) == Path("/s/u1/portaflow/w")
