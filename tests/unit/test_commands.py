"""run_command: what an external command's success and failure look like to the code and to a person."""

from __future__ import annotations

import logging
import shlex
import sys
import time

import pytest

from portaflow.commands import CommandError, run_command
from portaflow.errors import PortaflowError

PY = sys.executable


def test_success_returns_text_output():
    result = run_command([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert result.returncode == 0
    assert result.stdout == "out\n" and result.stderr == "err\n"


def test_failure_names_command_exit_code_stdout_and_stderr():
    argv = [PY, "-c", "import sys; print('partial result'); print('no such queue: gpu', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(CommandError) as info:
        run_command(argv)
    exc = info.value
    assert isinstance(exc, PortaflowError) and exc.exit_code == 1  # the CLI prints it as a message, exit 1
    assert exc.exit_code_of_command == 3
    assert exc.argv == argv and exc.command == shlex.join(argv)
    assert exc.stdout == "partial result\n" and exc.stderr == "no such queue: gpu\n"
    message = str(exc)
    assert "exit code 3" in message and shlex.join(argv) in message
    assert "stdout: partial result" in message and "stderr: no such queue: gpu" in message


def test_check_false_returns_a_failure_for_the_caller_to_read():
    result = run_command([PY, "-c", "import sys; sys.exit(5)"], check=False)
    assert result.returncode == 5


def test_long_output_is_quoted_by_its_end():
    argv = [PY, "-c", "import sys; print('x' * 5000 + 'THE REASON', file=sys.stderr); sys.exit(1)"]
    with pytest.raises(CommandError) as info:
        run_command(argv)
    message = str(info.value)
    assert message.rstrip().endswith("THE REASON") and "..." in message
    assert len(message) < 3000 + len(shlex.join(argv))
    assert info.value.stderr.startswith("x" * 5000)  # the attribute keeps everything


def test_missing_binary_raises_even_without_check():
    with pytest.raises(CommandError) as info:
        run_command(["portaflow-no-such-tool-xyz", "--version"], check=False)
    assert info.value.exit_code_of_command is None
    assert "portaflow-no-such-tool-xyz not found on PATH" in str(info.value)
    assert "portaflow-no-such-tool-xyz --version" in str(info.value)


def test_missing_working_directory_is_not_reported_as_a_missing_binary(tmp_path):
    with pytest.raises(CommandError) as info:
        run_command([PY, "-c", "pass"], cwd=tmp_path / "gone")
    assert "not found on PATH" not in str(info.value)
    assert "could not start" in str(info.value) and "gone" in str(info.value)


def test_not_executable_is_a_command_error(tmp_path):
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")  # no execute bit
    with pytest.raises(CommandError) as info:
        run_command([script])
    assert "could not start" in str(info.value) and "Permission denied" in str(info.value)


def test_timeout_stops_the_command_and_keeps_what_it_said():
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        run_command([PY, "-c", "import time; print('waiting for the scheduler', flush=True); time.sleep(30)"], timeout=1, check=False)
    assert time.monotonic() - started < 15
    assert info.value.exit_code_of_command is None
    assert "no answer within 1 s" in str(info.value)
    assert "waiting for the scheduler" in str(info.value)


def test_env_replaces_the_environment_and_cwd_is_used(tmp_path):
    result = run_command([PY, "-c", "import os; print(os.environ.get('PF_TEST'), os.environ.get('HOME'), os.getcwd())"],
                         env={"PF_TEST": "yes", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert result.stdout.split() == ["yes", "None", str(tmp_path)]


def test_input_is_passed_on_stdin():
    assert run_command([PY, "-c", "import sys; print(sys.stdin.read().upper())"], input="classad").stdout == "CLASSAD\n"


def test_each_command_is_logged_with_its_arguments(caplog):
    caplog.set_level(logging.DEBUG, logger="portaflow.commands")
    run_command([PY, "-c", "print(1)", "an argument with spaces"])
    records = [r for r in caplog.records if r.name == "portaflow.commands"]
    assert records and records[0].levelno == logging.DEBUG
    assert records[0].getMessage() == "running: " + shlex.join([PY, "-c", "print(1)", "an argument with spaces"])
    assert any(r.getMessage().startswith("exit 0 after ") for r in records)


def test_a_caller_can_log_a_command_louder(caplog):
    caplog.set_level(logging.INFO, logger="portaflow.commands")
    run_command([PY, "-c", "pass"], level=logging.INFO)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [f"running: {shlex.join([PY, '-c', 'pass'])}"]
