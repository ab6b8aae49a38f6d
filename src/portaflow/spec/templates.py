"""The one template language of workflow and profile files: `{name}` fields, `{{` and `}}` for literal braces.

Why here, in spec: a template's mistakes (an unknown field, an unclosed brace, a bash group `{ ...; }` written
without doubled braces) are mistakes in the file, so `validate` reports them with the file, line and column of
the field, not `plan` with none. The planner fills templates with `scan` too (plan/templates.py), so what passes
here is exactly what the planner can fill.

A template is literal text and fields. `{{` is a literal `{`, `}}` a literal `}`; `{` starts a field that ends at
the next `}`; a field's name is letters, digits, `_`, `-` and `.` (`inputs.reads`). No format specs
(`{n:>3}`), conversions (`{n!r}`), indexing (`{a[0]}`) or nested fields: these are refused, never guessed at.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from portaflow.errors import Location, Problem
from portaflow.spec.validation import dotted
from portaflow.spec.workflow import Step, Workflow
from portaflow.spec.yamlfile import YamlDocument, did_you_mean

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")
LITERAL_BRACES = "write '{{' and '}}' for literal braces; a shell group '{ a; b; }' is written '{{ a; b; }}'"


class TemplateError(ValueError):
    """A template names an unknown field or uses brace syntax portaflow does not support.

    `offset` is where in the template text the mistake starts (None when it is not one spot), and `fragment`
    the text there (a field with its braces, or the lone brace), so that a file's line and column can be found."""

    def __init__(self, message: str, offset: int | None = None, fragment: str = "", hint: str | None = None):
        super().__init__(message + (f" ({hint})" if hint else ""))
        self.message, self.offset, self.fragment, self.hint = message, offset, fragment, hint


@dataclass(frozen=True)
class Piece:
    """A run of literal text (`name` None) or one field, with its offset in the template."""

    offset: int
    literal: str
    name: str | None = None


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
"""An escape, a whole field, or a lone brace (left to right, an escape before a field, as str.format reads)."""


def scan(template: str) -> Iterator[Piece]:
    """The template's literal text and fields, in order (TemplateError, with the offset, on malformed braces)."""
    return iter(_pieces(template))


@functools.lru_cache(maxsize=4096)
def _pieces(template: str) -> tuple[Piece, ...]:
    """scan's work, once per template text (a step's templates are filled once per task: thousands of times)."""
    out: list[Piece] = []
    literal: list[str] = []
    start = 0
    position = 0
    for match in _TOKEN.finditer(template):
        literal.append(template[position:match.start()])
        position = match.end()
        token = match.group()
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        i = match.start()
        if token == "}":
            raise TemplateError("a single '}' outside a field", i, "}", LITERAL_BRACES)
        if token == "{":
            end = template.find("}", i + 1)
            if end < 0:
                raise TemplateError("'{' opens a field that is never closed", i, "{", LITERAL_BRACES)
            raise TemplateError(f"'{{' opens a field that another '{{' interrupts: {template[i:end + 1]!r}", i, template[i:end + 1],
                                LITERAL_BRACES)
        name = match.group(1)
        _check_name(name, i, token)
        text = "".join(literal)
        if text:
            out.append(Piece(start, text))
        out.append(Piece(i, "", name))
        literal, start = [], position
    literal.append(template[position:])
    text = "".join(literal)
    if text:
        out.append(Piece(start, text))
    return tuple(out)


def _check_name(name: str, offset: int, fragment: str) -> None:
    if not name:
        raise TemplateError("empty field '{}'", offset, fragment, LITERAL_BRACES)
    if _NAME.fullmatch(name):
        return
    if name.strip() != name or " " in name or ";" in name:
        raise TemplateError(f"{fragment!r} is not a field (a field is a name in braces, like '{{shard}}')", offset, fragment, LITERAL_BRACES)
    if ":" in name or "!" in name:
        raise TemplateError(f"field {fragment} may not use format specs or conversions", offset, fragment,
                            "portaflow fills in values as they are")
    raise TemplateError(f"field {fragment} is not a name (letters, digits, '_', '-', and '.' between parts)", offset, fragment,
                        LITERAL_BRACES)


def fields(template: str) -> list[str]:
    """The field names a template uses, in order (raises TemplateError on malformed braces)."""
    return [piece.name for piece in scan(template) if piece.name is not None]


def render(template: str, lookup: Callable[[str], str]) -> str:
    """Fill `template`, asking `lookup` for each field's final text."""
    return "".join(piece.literal if piece.name is None else lookup(piece.name) for piece in scan(template))


FieldCheck = Callable[[str], "tuple[str, str | None] | None"]
"""Says why a field name cannot be used in a place: (message, hint), or None when it can."""


def check_template(template: str, allowed: Collection[str] | FieldCheck, what: str = "template") -> list[TemplateError]:
    """Everything wrong with `template` given the field names it may use; an empty list when it can be filled.

    `allowed` is a collection of names, or a FieldCheck. One function for every template of every file: workflow
    commands, paths, arguments and environment values, and profile fields such as `slurm.gpu_syntax`. Fields
    before a malformed brace are checked too; the text after it is not (its braces cannot be read)."""
    check = allowed if callable(allowed) else _known_names(sorted(allowed), what)
    broken: TemplateError | None = None
    try:
        pieces = _pieces(template)
    except TemplateError as exc:  # the text before the bad brace reads well: its fields are checked too
        broken = exc
        pieces = _pieces(template[: exc.offset]) if exc.offset else ()
    out = []
    seen: set[str] = set()
    for piece in pieces:
        if piece.name is None or piece.name in seen:  # a field is reported once, however often it is used
            continue
        seen.add(piece.name)
        why = check(piece.name)
        if why is not None:
            out.append(TemplateError(why[0], piece.offset, "{" + piece.name + "}", why[1]))
    return out + ([broken] if broken else [])


def _known_names(names: list[str], what: str) -> FieldCheck:
    def why_not(name: str) -> tuple[str, str | None] | None:
        if name in names:
            return None
        hint = did_you_mean(name, names)
        known = f"{what} may use {', '.join('{' + n + '}' for n in names)}" if names else f"{what} takes no fields"
        return f"unknown field {{{name}}}", f"{hint} {known}" if hint else known

    return why_not


def template_validator(allowed: Collection[str], what: str, required: Collection[str] = ()) -> Callable[[str], str]:
    """A pydantic AfterValidator for a profile's template field: known fields only, the `required` ones present."""

    def validate(value: str) -> str:
        problems = check_template(value, allowed, what)
        if problems:
            raise ValueError(str(problems[0]))
        missing = [name for name in required if name not in fields(value)]
        if missing:
            raise ValueError(f"expected a template containing {', '.join(repr('{' + m + '}') for m in missing)}, found {value!r}")
        return value

    return validate


# ---- where a template's mistake is in its file -------------------------------------------------------------------

def locate_in_value(document: YamlDocument, keypath: tuple[str | int, ...], error: TemplateError) -> Location:
    """The line and column of `error`'s fragment inside the value at `keypath` (the value's own place when the
    fragment cannot be found in the text, e.g. a value with escapes that change it)."""
    start = document.value_location(keypath) if keypath and isinstance(keypath[-1], str) else document.locate(keypath)
    if not document.text or start.line is None or not error.fragment:
        return start
    lines = document.text.split("\n")
    offset = sum(len(line) + 1 for line in lines[: start.line - 1]) + (start.column or 1) - 1
    found = document.text.find(error.fragment, offset)
    if found < 0 or document.text.count("\n", offset, found) > len(error.fragment) + 200:
        return start
    line = document.text.count("\n", 0, found) + 1
    return Location(document.path, line, found - (document.text.rfind("\n", 0, found) + 1) + 1)


def template_problem(document: YamlDocument, keypath: tuple[str | int, ...], error: TemplateError) -> Problem:
    """A located Problem for a template's mistake."""
    return Problem(locate_in_value(document, keypath, error), dotted(keypath), error.message, error.hint)


def walk_strings(value: Any, keypath: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside `value` (lists and mapping values, not keys) with its key path."""
    if isinstance(value, str):
        yield keypath, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk_strings(item, (*keypath, i))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk_strings(item, (*keypath, key))


# ---- the templates of a workflow ---------------------------------------------------------------------------------

RESOURCE_FIELDS = ("resources.cores", "resources.gpus", "resources.memory_mib", "resources.walltime_s")
"""What a command may use of its step's resources (the planner fills exactly these)."""


def workflow_template_problems(workflow: Workflow, document: YamlDocument) -> list[Problem]:
    """Every template of `workflow` checked against the fields its place may use, located in `document`.

    What each place may use is what the planner fills there: parameters everywhere; a step's own scatter
    variables in its paths, command, arguments and environment; any step's scatter variable in input paths (a
    gather); the step's inputs, outputs and resources in its command; parameters alone in `scatter`."""
    owners: dict[str, str] = {}
    for step_name, step in workflow.steps.items():
        for var in step.scatter:
            owners.setdefault(var, step_name)
    params = set(workflow.parameters)
    problems: list[Problem] = []
    for step_name, step in workflow.steps.items():
        where = ("steps", step_name)
        own = params | set(step.scatter)
        for keypath, text in _step_templates(step, where):
            place = keypath[2]
            if place == "inputs":
                allowed = params | set(owners)
            elif place == "command":
                allowed = own | {f"inputs.{k}" for k in step.inputs} | {f"outputs.{k}" for k in step.outputs} | set(RESOURCE_FIELDS)
            elif place == "scatter":
                allowed = params
            else:
                allowed = own
            check = _field_check(allowed, owners, step_name, place)
            problems.extend(template_problem(document, keypath, error) for error in check_template(text, check))
    return problems


def _step_templates(step: Step, where: tuple[str, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if step.command is not None:
        yield (*where, "command"), step.command
    for key, value in step.inputs.items():
        yield from walk_strings(value, (*where, "inputs", key))
    for key, value in step.outputs.items():
        yield ((*where, "outputs", key), value) if isinstance(value, str) else ((*where, "outputs", key, "path"), value.path)
    yield from walk_strings(step.args, (*where, "args"))
    yield from walk_strings(step.env, (*where, "env"))
    for var, spec in step.scatter.items():
        if isinstance(spec, str):
            yield (*where, "scatter", var), spec
        elif isinstance(spec, dict) and isinstance(spec.get("range"), str):
            yield (*where, "scatter", var, "range"), spec["range"]


def _field_check(allowed: set[str], owners: Mapping[str, str], step_name: str, place: str) -> FieldCheck:
    known = _known_names(sorted(allowed), f"a step's {place}")

    def why_not(name: str) -> tuple[str, str | None] | None:
        if name in owners and name not in allowed and place != "scatter":
            return (f"field {{{name}}} is a scatter variable of step {owners[name]}, which step {step_name} does not scatter over",
                    "a step's paths, command and values use its own scatter variables; only its inputs may gather over another's")
        return known(name)

    return why_not
