"""Field types shared by workflow and site models: sizes and durations written as text."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from portaflow.safetext import ENV_NAME, SCHEDULER_WORD, control_character, env_name_problem
from portaflow.units import parse_memory_mib, parse_walltime_seconds

MemoryMiB = Annotated[
    int,
    BeforeValidator(parse_memory_mib),
    WithJsonSchema({"type": ["string", "integer"], "description": "memory, e.g. '4GB', '4000MiB', '2G' (bare integer: MiB)"}),
]
"""A memory size, normalised to MiB when loaded."""

WalltimeSeconds = Annotated[
    int,
    BeforeValidator(parse_walltime_seconds),
    WithJsonSchema({"type": ["string", "integer"], "description": "duration, e.g. '90m', '1h30m', '2-00:00:00' (bare integer: minutes)"}),
]
"""A walltime, normalised to seconds when loaded."""

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
"""A name used in file names, job names and rule names: letters, digits, '_' and '-'."""


def _step_name(value: str) -> str:
    if not value[:1].isascii() or not value[:1].isalpha() or not all(c.isascii() and (c.isalnum() or c == "_") for c in value):
        raise ValueError(f"step name {value!r}: expected letters, digits and '_', starting with a letter (a step's name is a "
                         "Snakemake rule name, which is a Python identifier: '-' is not allowed)")
    return value


StepName = Annotated[str, AfterValidator(_step_name), WithJsonSchema({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]*$"})]
"""A step's name: it becomes a Snakemake rule name (a Python identifier), a task id, file and job names."""


def _env_name(value: str) -> str:
    problem = env_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


EnvName = Annotated[str, AfterValidator(_env_name), WithJsonSchema({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"})]
"""An environment variable's name (written into `export NAME=...` in every job's shell)."""


def _one_line(value: str) -> str:
    bad = control_character(value)
    if bad:
        raise ValueError(f"contains {bad}: expected one line of text (it is written into job scripts and submit descriptions, "
                         "where a new line would be read as another command)")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
"""Text written into one line of a job script, an `#SBATCH` line or a submit command: no newline or control character."""


def _scheduler_word(value: str) -> str:
    if not SCHEDULER_WORD.fullmatch(value):
        raise ValueError(f"{value!r}: expected one word of letters, digits and _ . @ : + / % , = - (it is written into every "
                         "job's options, where spaces, quotes, $, `, ;, &, |, <, >, parentheses or a new line would change the job)")
    return value


SchedulerWord = Annotated[str, AfterValidator(_scheduler_word)]
"""A value written into every job's options (account, qos, reservation, accounting group)."""


def _attribute_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a ClassAd attribute name: expected letters, digits and '_', not starting with a digit")
    return value


AttributeName = Annotated[str, AfterValidator(_attribute_name)]
"""A job attribute's name, written as `+Name = value` into submit descriptions."""


def _machine_cores(value: Any) -> Any:
    return os.cpu_count() or 1 if value == "auto" else value


def _machine_memory(value: Any) -> Any:
    if value == "auto":
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return parse_memory_mib(value)


CoresOrAuto = Annotated[
    int,
    BeforeValidator(_machine_cores),
    WithJsonSchema({"type": ["integer", "string"], "description": "a number of cores, or 'auto' (this machine's, read when loaded)"}),
]
"""Cores per node; 'auto' (for the local site) means this machine's count."""

MemoryOrAuto = Annotated[
    int,
    BeforeValidator(_machine_memory),
    WithJsonSchema({"type": ["integer", "string"], "description": "memory, e.g. '64GB', or 'auto' (this machine's, read when loaded)"}),
]
"""Memory per node; 'auto' (for the local site) means this machine's physical memory."""
