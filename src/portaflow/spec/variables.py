"""`$NAME` in site profile values: which fields take them, and where each is expanded.

Why two places: a profile names places as the *site* knows them (`$SCRATCH`, `$PROJECT`, `$TMPDIR`), and most of
those exist only in a job on a compute node (`$TMPDIR` is made per job), so the job's own shell must expand them.
Only `storage.work_dir` is used by the driver itself (it creates the work directory), so it is expanded there, and
an unset variable is an error rather than a directory literally named `$SCRATCH`.

Only `$NAME` and `${NAME}` are variables; every other character of a value stays literal (no `$(...)`, no
backquotes, no globbing), so a value cannot run a command. Values that users supply through the workflow
(parameters, a step's `env`) are never expanded: they are single-quoted into the job's shell.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping

VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
"""`$NAME` or `${NAME}`, as a POSIX shell reads them."""

EXPANDED_WHERE_THE_JOB_RUNS: tuple[tuple[str, ...], ...] = (
    ("storage", "scratch_dir"),
    ("container", "binds"),
    ("container", "image_dir"),
    ("container", "images"),
    ("container", "cache_dir"),
    ("environment", "env"),
)
"""Profile fields whose `$NAME`s the job's shell expands on the node (docs/site-profiles.md, "Variables")."""

EXPANDED_ON_THE_DRIVER: tuple[tuple[str, ...], ...] = (("storage", "work_dir"),)
"""Profile fields the driver expands with its own environment (an unset variable is an error)."""


def variables(value: str) -> list[str]:
    """The variable names `value` uses, in order, each once."""
    return list(dict.fromkeys(m.group("braced") or m.group("plain") for m in VARIABLE.finditer(value)))


def _literal(text: str) -> str:
    """`text` for the inside of a double-quoted shell word: every character literal."""
    return "".join("\\" + c if c in '"\\`$' else c for c in text)


def shell_word(value: str) -> str:
    """`value` as one shell word whose `$NAME`/`${NAME}` the shell that runs it expands, all else literal.

    A value without variables is single-quoted as before (shlex.quote), so job scripts of profiles without
    variables do not change."""
    if not VARIABLE.search(value):
        return shlex.quote(value)
    out, pos = ['"'], 0
    for match in VARIABLE.finditer(value):
        out += [_literal(value[pos:match.start()]), match.group(0)]
        pos = match.end()
    out += [_literal(value[pos:]), '"']
    return "".join(out)


class UnsetVariable(ValueError):
    """A value names a variable that is not set in the environment it is expanded in."""

    def __init__(self, names: list[str], value: str):
        self.names, self.value = names, value
        super().__init__(f"{value!r} uses {', '.join('$' + n for n in names)}, which {'is' if len(names) == 1 else 'are'} not set here")


def expand_here(value: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` with its variables (and a leading `~`) expanded from `environ` (default: this process's).

    Raises UnsetVariable naming every unset variable; an empty variable counts as set (the shell's rule)."""
    env = os.environ if environ is None else environ
    missing = [n for n in variables(value) if n not in env]
    if missing:
        raise UnsetVariable(missing, value)
    expanded = VARIABLE.sub(lambda m: env[m.group("braced") or m.group("plain")], value)
    if expanded == "~" or expanded.startswith("~/"):
        expanded = env.get("HOME", os.path.expanduser("~")) + expanded[1:]
    return expanded
