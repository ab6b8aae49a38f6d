"""Hostile values and credentials through real local runs with both engines (issue 14).

A unit test shows each generated format holds values as data (tests/unit/test_injection.py); this one runs them:
scattered values with a newline that once escaped a Snakefile comment, quotes, `$()`, backticks, braces and `%` reach
the step literally and run nothing; the run's manifest is valid JSON holding them exactly. Credentials in the driver's
environment reach the step (it writes their digest) and appear in nothing the run writes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from testlib import run_portaflow

ENGINES = ["parsl", "snakemake"]
SECRETS = {"PF_API_TOKEN": "tok-3f9a1c7e5b2d4860-SECRET", "PF_DB_PASSWORD": "pw-81c2e7d9a4f3b6"}


def hostile(canary: Path) -> list[str]:
    c = str(canary)
    return [f'x\nimport os; os.system("touch {c}")\nrule zz:\n    #', f"'\"; touch {c}; $(touch {c}) `touch {c}`",
            f"{{x}} {{{{y}}}} }}{{ %(a)s %s %% \\ {c}"]


def workflow(tmp_path: Path, values: list[str]) -> Path:
    path = tmp_path / "hostile.yaml"
    steps = {
        f"echo{n}": {"scatter": {f"w{n}": f"{{v{n}}}"}, "command": f"printf '%s|%s' {{w{n}}} \"$PF_VALUE\" > {{outputs.out}}",
                     "env": {"PF_VALUE": f"{{w{n}}}"}, "outputs": {"out": f"out/echo{n}.txt"}}
        for n in range(len(values))
    }
    steps["credentials"] = {  # what a step does with a credential: use it (here: its digest proves it arrived)
        "command": "printf '%s %s' \"$PF_API_TOKEN\" \"$PF_DB_PASSWORD\" | sha256sum | cut -c1-64 > {outputs.digest}",
        "outputs": {"digest": "out/credentials.sha256"},
    }
    path.write_text(yaml.safe_dump({"name": "hostile", "parameters": {f"v{n}": [v] for n, v in enumerate(values)}, "steps": steps}))
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_hostile_values_and_credentials_through_a_real_run(tmp_path, engine):
    canary = tmp_path / "CANARY"
    values = hostile(canary)
    workdir = tmp_path / "wd"
    result = run_portaflow("run", str(workflow(tmp_path, values)), "--engine", engine, "--workdir", str(workdir), env=SECRETS,
                           cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for n, value in enumerate(values):
        assert (workdir / "out" / f"echo{n}.txt").read_bytes().decode() == f"{value}|{value}"
    assert not canary.exists(), "a value ran as code"
    run_dir = workdir / ".portaflow" / "runs" / "latest"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert all(info["status"] == "ran" for info in manifest["tasks"].values()), manifest["tasks"]
    parameters = json.loads((run_dir / "parameters.json").read_text())
    assert parameters == {f"v{n}": [v] for n, v in enumerate(values)}

    digest = hashlib.sha256(f"{SECRETS['PF_API_TOKEN']} {SECRETS['PF_DB_PASSWORD']}".encode()).hexdigest()
    assert (workdir / "out" / "credentials.sha256").read_text().strip() == digest, "the step did not receive the credentials"
    written = [p for p in workdir.rglob("*") if p.is_file() and not p.is_symlink()]
    # What the grep must cover: the rendered files, the profile, the RO-Crate (issue 19) and its copy of the workflow.
    assert any("rendered" in p.parts for p in written) and (run_dir / "site.yaml").is_file()
    assert (run_dir / "ro-crate-metadata.json").is_file() and (run_dir / "workflow.yaml").is_file()
    for path in written:
        data = path.read_bytes()
        for name, secret in SECRETS.items():
            assert secret.encode() not in data, f"{name}'s value was written into {path}"
    assert all(secret not in result.stdout + result.stderr for secret in SECRETS.values())
