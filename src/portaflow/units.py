"""Units that admins and scientists write by hand: walltimes and memory sizes.

Why one module: both the workflow (a step's request) and the site profile (a partition's limit) use
them, and the plan compares the two, so they must parse to the same normal form: seconds and MiB.
"""

from __future__ import annotations

import math
import re

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B?|[KMGTP])?\s*$", re.IGNORECASE)
_MEMORY_FACTORS_MIB = {
    "": 1.0 / (1024 * 1024),  # plain bytes
    "B": 1.0 / (1024 * 1024),
    "K": 1.0 / 1024,
    "KB": 1000 / (1024 * 1024),
    "KIB": 1.0 / 1024,
    "M": 1.0,
    "MB": 1000**2 / 1024**2,
    "MIB": 1.0,
    "G": 1024.0,
    "GB": 1000**3 / 1024**2,
    "GIB": 1024.0,
    "T": 1024.0**2,
    "TB": 1000**4 / 1024**2,
    "TIB": 1024.0**2,
    "P": 1024.0**3,
    "PB": 1000**5 / 1024**2,
    "PIB": 1024.0**3,
}
MEMORY_EXAMPLES = "a size like '4GB', '4000MiB', '512M' or '2G'"
WALLTIME_EXAMPLES = "a duration like '90m', '1h30m', '45s', '2-00:00:00', '01:30:00' or '2d'"


def parse_memory_mib(value: object) -> int:
    """Parse a memory size into whole MiB (rounded up, so a request is never cut short).

    Single letters (K, M, G, T) follow SLURM and mean binary units; 'GB' means 10^9 bytes and
    'GiB' 2^30, as in Kubernetes. A bare integer is MiB (SLURM's --mem default unit).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {MEMORY_EXAMPLES}, found {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected {MEMORY_EXAMPLES}, found a negative number {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected {MEMORY_EXAMPLES}, found {value!r}")
    match = _MEMORY_RE.match(value)
    if not match:
        raise ValueError(f"expected {MEMORY_EXAMPLES}, found {value!r}")
    number, unit = match.groups()
    unit = (unit or "").upper()
    if unit not in _MEMORY_FACTORS_MIB:
        raise ValueError(f"expected {MEMORY_EXAMPLES}, found unknown unit {unit!r} in {value!r}")
    if unit == "" and "." not in number:
        return int(number)  # bare number: MiB, like SLURM
    return math.ceil(float(number) * _MEMORY_FACTORS_MIB[unit] - 1e-9)


_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_DURATION_FACTORS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_CLOCK_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_walltime_seconds(value: object) -> int:
    """Parse a walltime into seconds.

    Accepts unit strings ('90m', '1h30m', '2d'), SLURM clock forms ('2-00:00:00', '01:30:00',
    'HH:MM'), or a bare integer, which means minutes, as in SLURM's --time and Snakemake's runtime.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {WALLTIME_EXAMPLES}, found {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"expected {WALLTIME_EXAMPLES}, found {value}")
        return value * 60
    if not isinstance(value, str):
        raise ValueError(f"expected {WALLTIME_EXAMPLES}, found {value!r}")
    text = value.strip()
    clock = _CLOCK_RE.match(text)
    if clock and (":" in text or "-" in text):
        days, first, second, third = clock.groups()
        days_s = int(days or 0) * 86400
        if third is not None:  # H:M:S
            seconds = int(first) * 3600 + int(second) * 60 + int(third)
        elif second is not None:  # with days, D-H:M; without, H:M (SLURM reads M:S, but people mean H:M)
            seconds = int(first) * 3600 + int(second) * 60
        else:  # D-H
            seconds = int(first) * 3600
        total = days_s + seconds
    else:
        compact = text.replace(" ", "")
        parts = _DURATION_PART_RE.findall(compact)
        if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
            raise ValueError(f"expected {WALLTIME_EXAMPLES}, found {value!r}")
        total = math.ceil(sum(float(n) * _DURATION_FACTORS[u.lower()] for n, u in parts))
    if total <= 0:
        raise ValueError(f"expected a positive duration, found {value!r}")
    return total


def format_walltime(seconds: int) -> str:
    """SLURM's D-HH:MM:SS (or HH:MM:SS under a day): what admins read in squeue."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def walltime_minutes(seconds: int) -> int:
    """A walltime in whole minutes, rounded up and never 0: what schedulers that count in minutes are asked for
    (Snakemake's `runtime`, a Parsl block's `--time`), so no job gets less time than the plan checked."""
    return max(1, -(-int(seconds) // 60))


def describe_walltime(seconds: int) -> str:
    """Human words for messages: '3 days', '2h 30m', '45 s'."""
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days != 1 else "")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    words = []
    if hours:
        words.append(f"{hours}h")
    if minutes:
        words.append(f"{minutes}m")
    if secs or not words:
        words.append(f"{secs}s")
    return " ".join(words)


def describe_memory(mib: int) -> str:
    """Human words for messages: '4 GiB', '1.5 TiB', '500 MiB'."""
    for unit, size in (("TiB", 1024 * 1024), ("GiB", 1024)):
        if mib >= size:
            return f"{mib / size:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{mib} MiB"
