"""What a step's log says about the step, from `python -m portaflow.runtime.call` (its stderr is the log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TARGET = "portaflow.examples.wordfreq:make_text"


def call(tmp_path, payload: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "portaflow.runtime.call", json.dumps(payload)], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=os.environ)


def test_a_step_says_where_it_ran(tmp_path):
    result = call(tmp_path, {"target": TARGET, "inputs": {}, "outputs": {"text": "text/0.txt"},
                             "args": {"seed": 1, "shard": 0, "words": 10}})
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"portaflow: {TARGET} on ") and f"Python {sys.executable}" in first
    assert first.endswith(("on the host (no container)", "in a container (docker)", "in a container (podman)",
                           "in a container (apptainer)"))
    assert (tmp_path / "text" / "0.txt").exists()


def test_a_failing_step_logs_its_traceback_and_an_error_line_and_leaves_no_output(tmp_path):
    result = call(tmp_path, {"target": TARGET, "inputs": {}, "outputs": {"text": "text/0.txt"}, "args": {"seed": 1}})
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'shard'" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == f"portaflow: error: step {TARGET} failed: KeyError: 'shard'"
    assert not (tmp_path / "text" / "0.txt").exists()


def test_a_step_that_writes_nothing_fails_saying_which_output(tmp_path):
    (tmp_path / "lazy_step.py").write_text("def noop(**kwargs):\n    pass\n")  # importable: -m puts the cwd on sys.path
    result = call(tmp_path, {"target": "lazy_step:noop", "inputs": {}, "outputs": {"table": "out/t.json"}, "args": {}})
    assert result.returncode == 1
    assert result.stderr.rstrip().splitlines()[-1] == "portaflow: error: step lazy_step:noop finished without writing: out/t.json"
