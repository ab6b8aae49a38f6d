"""Field types shared by workflow and site models: sizes and durations written as text."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

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
