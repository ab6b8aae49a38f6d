"""Errors that portaflow reports to people, each with the exit code the CLI uses.

Why a small hierarchy: the CLI maps each class to an exit code (2 for bad input, 1 for a failed
step) and prints its message without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class PortaflowError(Exception):
    """Base of every error meant for a person rather than a developer."""

    exit_code = 1


class InputError(PortaflowError):
    """Bad input from a user or an admin: a file, a flag, a parameter. Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class Location:
    """Where in a YAML file a problem sits (1-based line and column, as editors show them)."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: where, which key, what was expected and what was found."""

    location: Location
    key: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: {self.key}: {self.message}" if self.key else f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class SpecError(InputError):
    """One or more problems found while loading a workflow or site profile."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PlanError(InputError):
    """A workflow and a site that cannot be combined (a request no partition satisfies, a cycle...)."""


class PreflightError(InputError):
    """The world is not ready for a run: an input file is missing, a runtime or image is absent."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; the command exits 128 + its number (SIGINT 130, SIGHUP 129, SIGTERM 143), as shells
    report it. A KeyboardInterrupt, so that everything that cleans up after Ctrl-C cleans up after it too."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum
        self.exit_code = 128 + signum
