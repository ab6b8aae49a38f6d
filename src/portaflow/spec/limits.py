"""How large an input portaflow accepts: every bound on workflow and profile files, in one place.

Why bounds at all: a workflow or profile is read, expanded and planned on a login node before anything is
submitted. Without bounds a small file can make that take for ever or fill the memory (a YAML alias bomb,
"billion laughs", expands a 1 KB file to 10^9 values; `scatter: {i: {range: 1000000000}}` asks for 10^9
tasks; `validate /dev/zero` reads for ever). With them, such an input is refused at once with exit 2 and a
message that names the limit. Each limit is far above what a real workflow needs (the shipped files are
a few KB, with a few hundred YAML values); docs/workflows.md lists them ("Limits").
"""

from __future__ import annotations

MAX_FILE_BYTES = 1024 * 1024
"""Largest workflow, site profile, parameters file or container recipe read (1 MiB; the shipped ones are under 4 KB)."""

MAX_NESTING_DEPTH = 64
"""Deepest nesting of mappings and lists in a YAML file (the shipped files nest at most 6 deep)."""

MAX_YAML_VALUES = 50_000
"""Most values (scalars, mappings and lists) a YAML file may hold, counted with every alias expanded: an alias
counts as everything it stands for, so an alias bomb is refused while it is read, before it is expanded. (The
YAML reader, which keeps every key's line and column, reads a few thousand values a second: a file at this
limit takes some seconds.)"""

MAX_FANOUT = 100_000
"""Most tasks one step may fan out into (the product of its scatter variables' values)."""

MAX_PLAN_TASKS = 250_000
"""Most tasks in a plan, all steps together."""

MAX_PLAN_PATHS = 2_000_000
"""Most input and output paths in a plan, all tasks together (a gather over a wide fan-out, repeated in every
task of another wide fan-out, multiplies)."""


def limit_message(what: str, limit: int, name: str, found: int | None = None) -> str:
    """The one wording of a limit's error: what went over, the limit and its name (to look it up in the docs)."""
    seen = f" ({found:,})" if found is not None else ""
    return f"{what}{seen} is more than the limit of {limit:,} ({name}; see 'Limits' in docs/workflows.md)"
