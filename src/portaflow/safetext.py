"""What a workflow's or a profile's text may hold where it is written into files that something executes.

Why one module: workflow and profile values reach several formats that are code (a Snakefile is Python; a job
script is shell; a submit description and `#SBATCH` lines are read line by line). Each rule here is used by every
place that needs it, so the Snakefile, the job scripts and the spec's validation agree on what is safe.
"""

from __future__ import annotations

import re

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""An environment variable name as POSIX shells accept it in `export NAME=...` (anything else would be shell code)."""

SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
"""Parts of a variable name that say it holds a credential (AWS_SECRET_ACCESS_KEY, GITLAB_TOKEN, DB_PASSWORD...)."""

SCHEDULER_WORD = re.compile(r"[A-Za-z0-9_.@:+/%,=-]+")
"""A value portaflow writes into a job's options (an account, a qos, a reservation, an accounting group): one word
of letters, digits and `_ . @ : + / % , = -`, nothing a shell, an `#SBATCH` line or a submit description would read
as something else (no space, quote, `$`, backtick, `;`, `&`, `|`, `<`, `>`, `(`, `)`, newline)."""

SHELL_META = re.compile(r"[\s'\"`$;&|<>()\\!*?\[\]{}#~]")
"""Characters a shell reads as more than a letter (whitespace, quotes, expansions, separators, globs, comments)."""


def env_name_problem(name: str) -> str | None:
    """Why `name` cannot be an environment variable name, or None when it can."""
    if ENV_NAME.fullmatch(name):
        return None
    return (f"{name!r} is not an environment variable name: expected letters, digits and '_', not starting with a digit "
            "(a job's shell would run anything else as a command)")


def looks_secret(name: str) -> bool:
    """Whether a variable's name says it holds a credential (its value must then never be written anywhere)."""
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def control_character(text: str) -> str | None:
    """The first character of `text` that starts a new line or is invisible (newline, CR, NUL, escape, Unicode line
    separators...), written as Python writes it, or None. Such a character would end a comment, an `#SBATCH` line or a
    submit command, and what follows it would be read as a line of its own."""
    for char in text:
        if not char.isprintable() and char != " ":
            return repr(char)
    return None


def one_line(text: str) -> str:
    """`text` for a comment in a generated file: every character that could end the line (or hide in it) is written
    as its Python escape (`\\n`), so the comment stays one comment whatever a parameter holds."""
    return "".join(char if char.isprintable() or char == " " else char.encode("unicode_escape").decode("ascii") for char in text)
