"""The one template language of workflow files: `{name}` fields, `{{` for a literal brace.

Paths are filled in raw (they are data). Commands get every value shell-quoted, so a parameter
such as `$(touch pwned)` or `a; rm -rf x` reaches the program as one argument and never runs.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Callable, Mapping
from typing import Any

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template names an unknown field or uses format syntax portaflow does not support."""


def fields(template: str) -> list[str]:
    """The field names a template uses, in order (raises TemplateError on malformed braces)."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template {template!r}: {exc} (write '{{{{' for a literal brace)") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise TemplateError(f"template field {{{name}}} may not use format specs or conversions")
        if not name:
            raise TemplateError(f"empty template field '{{}}' in {template!r}")
        names.append(name)
    return names


def render(template: str, lookup: Callable[[str], str]) -> str:
    """Fill `template`, asking `lookup` for each field's final text."""
    out = []
    for literal, name, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(lookup(name))
    return "".join(out)


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
