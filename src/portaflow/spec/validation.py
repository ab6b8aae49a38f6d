"""Turn pydantic's validation errors into problems a person can act on.

Why this exists: pydantic reports a location as a tuple that includes union branch names
('str', 'Output'...). We walk the YAML document along it to find the real key, its line and
column, and add a 'did you mean' hint for unknown keys (or, for a key that moved, where it went).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from portaflow.errors import Problem
from portaflow.spec.yamlfile import YamlDocument, did_you_mean


def problems_from_validation(
    error: ValidationError,
    docs: list[YamlDocument],
    model: type[BaseModel],
    moved: Mapping[tuple, tuple] | None = None,
) -> list[Problem]:
    """One Problem per distinct failing key, most specific first, located in the first doc that has it.

    `moved` maps key paths that older files wrote -> where they live now: such a key is reported with
    its new place rather than as a bare unknown key."""
    primary = docs[0]
    raw: list[tuple[tuple, dict]] = []
    for item in error.errors(include_url=False):
        path = _clean_path(primary.data, item["loc"])
        raw.append((path, item))
    # A union reports one error per branch; keep the deepest ones (the branch the user meant).
    paths = [p for p, _ in raw]
    kept: list[tuple[tuple, dict]] = []
    seen: set[tuple] = set()
    for path, item in raw:
        if any(len(other) > len(path) and other[: len(path)] == path for other in paths):
            continue
        if path in seen:
            continue
        seen.add(path)
        kept.append((path, item))
    problems = []
    for path, item in kept:
        doc = next((d for d in docs if _has_path(d.data, path[:-1] if item["type"] in ("missing",) else path)), primary)
        if item["type"] == "missing":
            location = doc.locate(path[:-1])
        elif item["type"] == "extra_forbidden":
            location = doc.locate(path)
        else:
            location = doc.value_location(path) if path else doc.locate(path)
        problems.append(Problem(location, dotted(path), *_describe(item, path, model, moved or {})))
    return sorted(problems, key=lambda p: (p.location.file, p.location.line or 0, p.location.column or 0))


def _describe(item: dict, path: tuple, model: type[BaseModel], moved: Mapping[tuple, tuple]) -> tuple[str, str | None]:
    kind = item["type"]
    found = item.get("input")
    if kind == "missing":
        return "required key is missing", None
    if kind == "extra_forbidden" and path in moved:
        return moved_message(moved[path])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, path[:-1])
        hint = did_you_mean(str(path[-1]), allowed) if allowed else None
        if hint is None and allowed:
            hint = "allowed keys: " + ", ".join(sorted(allowed))
        return "unknown key", hint
    message = item["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if kind in ("value_error", "assertion_error"):
        return message, None
    if message.startswith("Input should be "):
        message = "expected " + message[len("Input should be "):]
    elif message.startswith("String should match pattern"):
        message = "expected a name of letters, digits, '_' and '-' starting with a letter"
    elif message.startswith("Dictionary should have at least"):
        message = "expected at least one entry"
    return f"{message}, found {_show(found)}", None


def moved_message(new: tuple) -> tuple[str, str]:
    """The message and hint for a key that now lives at `new` (e.g. ('slurm', 'qos'))."""
    return f"moved to {dotted(new)}", f"write it under a '{new[0]}:' section"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def dotted(path: tuple) -> str:
    """('steps', 'a', 'outputs', 0) -> 'steps.a.outputs[0]'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def depth_present(data: Any, path: tuple) -> int:
    """How many leading keys of `path` exist in `data` (len(path) when all of it does)."""
    node = data
    for depth, key in enumerate(path):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return depth
    return len(path)


def _has_path(data: Any, path: tuple) -> bool:
    return depth_present(data, path) == len(path)


def _clean_path(data: Any, loc: tuple) -> tuple:
    """Drop union-branch tags from a pydantic location, keeping the keys that the YAML has."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            out.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(part, str) and _looks_like_branch_tag(part):
            continue
        else:
            out.append(part)
            node = None
    return tuple(out)


def _looks_like_branch_tag(part: str) -> bool:
    return part in {"str", "int", "float", "bool", "list", "dict"} or "[" in part or part[:1].isupper()


def _allowed_keys(model: type[BaseModel], path: tuple) -> set[str]:
    """The field names allowed at `path` inside `model` (walks nested models, dicts and unions)."""
    current: Any = model
    for part in path:
        current = _descend(current, part)
        if current is None:
            return set()
    models = [m for m in _models_in(current)]
    return {name for m in models for name in m.model_fields}


def _descend(annotation: Any, part: Any) -> Any:
    for candidate in _models_in(annotation):
        if isinstance(part, str) and part in candidate.model_fields:
            return candidate.model_fields[part].annotation
    origin = typing.get_origin(annotation)
    if origin in (dict,):
        return typing.get_args(annotation)[1]
    if origin in (list,):
        return typing.get_args(annotation)[0]
    if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
        for arg in typing.get_args(annotation):
            found = _descend(arg, part)
            if found is not None:
                return found
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []
