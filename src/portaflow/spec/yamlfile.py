"""YAML reading that remembers where every key came from.

Why ruamel.yaml's round-trip loader: it keeps line and column for each mapping key and sequence
item, so a schema error deep inside a file can still point at `file:line:column`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from portaflow.errors import Location, Problem, SpecError


@dataclass
class YamlDocument:
    """A parsed YAML file plus the means to locate any key path inside it."""

    path: str
    data: Any

    def locate(self, keypath: tuple[str | int, ...]) -> Location:
        """Line and column of the deepest existing node on `keypath` (1-based)."""
        node = self.data
        line: int | None = 1
        col: int | None = 1
        for key in keypath:
            if isinstance(node, CommentedMap) and key in node:
                line, col = node.lc.key(key)
                line, col = line + 1, col + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                line, col = node.lc.item(key)
                line, col = line + 1, col + 1
                node = node[key]
            else:
                break
        return Location(self.path, line, col)

    def value_location(self, keypath: tuple[str | int, ...]) -> Location:
        """Line and column of the value stored at `keypath`, falling back to its key."""
        parent = self.data
        for key in keypath[:-1]:
            try:
                parent = parent[key]
            except (KeyError, IndexError, TypeError):
                return self.locate(keypath)
        last = keypath[-1] if keypath else None
        if isinstance(parent, CommentedMap) and last in parent:
            line, col = parent.lc.value(last)
            return Location(self.path, line + 1, col + 1)
        return self.locate(keypath)


def read_yaml(path: str | Path) -> YamlDocument:
    """Parse a YAML file; a syntax error becomes a SpecError pointing at the offending character."""
    path = Path(path)
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(Location(display), "", "file not found")]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(Location(display), "", f"cannot read file: {exc}")]) from None
    return parse_yaml_text(text, display)


def parse_yaml_text(text: str, display: str) -> YamlDocument:
    """Parse YAML text (duplicate keys are errors: silently keeping one hides a mistake)."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
        what = (exc.problem or "").strip() or "invalid YAML"
        context = f" {exc.context.strip()}" if exc.context else ""
        raise SpecError([Problem(where, "", f"YAML syntax error: {what}{context}")]) from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. duplicate keys in old versions)
        raise SpecError([Problem(Location(display), "", f"YAML error: {exc}")]) from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise SpecError([Problem(Location(display, 1, 1), "", f"expected a mapping at the top level, found {type(data).__name__}")])
    return YamlDocument(display, data)


def to_plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (pydantic and JSON want plain data)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if hasattr(value, "__float__") and type(value).__name__ == "ScalarFloat":
        return float(value)
    if type(value).__name__ in ("ScalarInt", "HexInt", "OctalInt", "BinaryInt"):
        return int(value)
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, str):
        return str(value)
    return value


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """A 'did you mean ...?' hint for a misspelt key or name, or None when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
