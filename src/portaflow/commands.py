"""One way to run an external command: logged, bounded in time, and failing with everything a person needs.

Why one helper: portaflow talks to sbatch, squeue, scancel, condor_q, podman, apptainer and more. Each call
is logged (at DEBUG, with its arguments) so `portaflow -v`/`--debug` shows what was run; a failure raises
`CommandError` with the command line, its exit code, stdout and stderr instead of a bare exit status
that someone must reproduce by hand.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from portaflow.errors import PortaflowError

log = logging.getLogger(__name__)

_TAIL = 2000
"""How much of stdout and stderr a CommandError quotes (the end, where tools put their reason)."""


class CommandError(PortaflowError):
    """An external command failed (non-zero exit, could not start, or ran past its timeout)."""

    def __init__(self, argv: Sequence[str], exit_code: int | None, stdout: str = "", stderr: str = "", reason: str = ""):
        self.argv = [str(a) for a in argv]
        self.exit_code_of_command = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.reason = reason or (f"exit code {exit_code}" if exit_code is not None else "failed")
        parts = [f"command failed ({self.reason}): {self.command}"]
        if stdout.strip():
            parts.append(f"stdout: {_tail(stdout)}")
        if stderr.strip():
            parts.append(f"stderr: {_tail(stderr)}")
        super().__init__("\n".join(parts))

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TAIL else "..." + text[-_TAIL:]


def run_command(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    timeout: float | None = 60,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
    level: int = logging.DEBUG,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (no shell), capture its text output, log it; raise CommandError if it fails and `check`.

    With check=False a non-zero exit is returned for the caller to read (e.g. a probe such as `sacct`
    answering or not); a command that cannot start or times out raises either way, since there is no
    result to read. `env` replaces the environment (pass {**os.environ, ...} to extend it).
    """
    args = [str(a) for a in argv]
    log.log(level, "running: %s", shlex.join(args))
    start = time.monotonic()
    try:
        result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, env=None if env is None else dict(env),
                                cwd=cwd, input=input)
    except OSError as exc:  # could not start: no such program, not executable, no such cwd
        reason = (f"{args[0]} not found on PATH" if isinstance(exc, FileNotFoundError) and exc.filename == args[0]
                  else f"could not start: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""))
        raise CommandError(args, None, reason=reason) from None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(args, None, out, err, reason=f"no answer within {timeout:g} s") from None
    log.debug("exit %d after %.2f s: %s", result.returncode, time.monotonic() - start, args[0])
    if check and result.returncode != 0:
        raise CommandError(args, result.returncode, result.stdout, result.stderr)
    return result
