"""Filling the template language of workflow files (spec/templates.py): `{name}` fields, `{{` for a literal brace.

Paths are filled in raw (they are data). Commands get every value shell-quoted, so a parameter
such as `$(touch pwned)` or `a; rm -rf x` reaches the program as one argument and never runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from portaflow.spec.templates import TemplateError, fields, render

__all__ = ["TemplateError", "fields", "quote_value", "render", "render_arg", "render_command", "render_path"]


def render_path(template: str, values: Mapping[str, Any]) -> str:
    """Fill a path template from parameters and scatter values (no quoting: a path is data)."""

    def lookup(name: str) -> str:
        if name not in values:
            raise TemplateError(f"unknown field {{{name}}}")
        return str(values[name])

    return render(template, lookup)


def quote_value(value: Any) -> str:
    """A value as one shell word (lists as several words, each quoted)."""
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in value)
    if isinstance(value, bool):
        value = str(value).lower()
    return shlex.quote(str(value))


def render_command(template: str, values: Mapping[str, Any]) -> str:
    """Fill a shell command template; every substituted value is quoted."""

    def lookup(name: str) -> str:
        if name not in values:
            raise TemplateError(f"unknown field {{{name}}}")
        return quote_value(values[name])

    return render(template, lookup)


def render_arg(value: Any, values: Mapping[str, Any]) -> Any:
    """Fill a callable's argument: '{n}' alone keeps the parameter's type; other strings are filled as text."""
    if isinstance(value, str):
        names = fields(value)
        if len(names) == 1 and value == "{" + names[0] + "}":
            if names[0] not in values:
                raise TemplateError(f"unknown field {{{names[0]}}}")
            return values[names[0]]
        return render_path(value, values)
    if isinstance(value, list):
        return [render_arg(v, values) for v in value]
    if isinstance(value, dict):
        return {k: render_arg(v, values) for k, v in value.items()}
    return value
