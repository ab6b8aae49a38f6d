"""YAML reading that remembers where every key came from.

Why ruamel.yaml's round-trip loader: it keeps line and column for each mapping key and sequence
item, so a schema error deep inside a file can still point at `file:line:column`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, ComposerError, MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import CollectionNode, MappingNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from portaflow.errors import Location, Problem, SpecError
from portaflow.spec.limits import MAX_FILE_BYTES, MAX_NESTING_DEPTH, MAX_YAML_VALUES, limit_message


@dataclass
class YamlDocument:
    """A parsed YAML file plus the means to locate any key path inside it."""

    path: str
    data: Any
    text: str = ""
    """The file's text, to find a spot inside a value (a template field in a command)."""

    def locate(self, keypath: tuple[str | int, ...]) -> Location:
        """Line and column of the deepest existing node on `keypath` (1-based).

        A key that has no place of its own (one brought in by a merge key `<<: *a`) is located at the
        deepest node above it that has one."""
        node = self.data
        line: int | None = 1
        col: int | None = 1
        for key in keypath:
            if isinstance(node, CommentedMap) and key in node:
                spot = node.lc.key(key)
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                spot = node.lc.item(key)
                node = node[key]
            else:
                break
            if not spot:
                break
            line, col = spot[0] + 1, spot[1] + 1
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
            spot = parent.lc.value(last)
            if spot:
                return Location(self.path, spot[0] + 1, spot[1] + 1)
        return self.locate(keypath)


def read_yaml(path: str | Path) -> YamlDocument:
    """Parse a YAML file; a syntax error becomes a SpecError pointing at the offending character."""
    display = str(path)
    return parse_yaml_text(read_text(path), display)


def read_text(path: str | Path) -> str:
    """A file's text, refused (SpecError, exit 2) when it is not a regular file, is over MAX_FILE_BYTES or is not UTF-8.

    Why stat before opening: opening a FIFO waits for a writer, and reading /dev/zero or /dev/urandom never ends;
    only a regular file's size is known and its reading bounded."""
    display = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SpecError([Problem(Location(display), "", "file not found")]) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise SpecError([Problem(Location(display), "", f"cannot read file: {getattr(exc, 'strerror', None) or exc}")]) from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError([Problem(Location(display), "", f"is not a regular file (it is {_file_kind(info.st_mode)}); "
                                                        "give the path of a YAML file")])
    if info.st_size > MAX_FILE_BYTES:
        raise SpecError([Problem(Location(display), "", limit_message("the file's size in bytes", MAX_FILE_BYTES, "MAX_FILE_BYTES", info.st_size))])
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)  # a file that grows while it is read stays bounded too
    except OSError as exc:
        raise SpecError([Problem(Location(display), "", f"cannot read file: {exc.strerror or exc}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError([Problem(Location(display), "", limit_message("the file's size in bytes", MAX_FILE_BYTES, "MAX_FILE_BYTES"))])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError([Problem(Location(display, line, column), "",
                                 f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded ({exc.reason})")]) from None


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a plain file")


class _OverLimit(ComposerError):
    """A limit of portaflow.spec.limits reached while composing (not a YAML syntax error)."""


class _BoundedComposer(Composer):
    """ruamel's composer that counts what it builds, an alias as everything it stands for (MAX_YAML_VALUES),
    and refuses an alias inside the node it names (a structure that contains itself has no plain form).

    Why while composing: ruamel keeps an alias as a shared reference, so a bomb costs nothing until something
    walks it; counting each alias's size once (memoised per node) stops it before anything expands it."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader=loader)
        self._values = 0
        self._sizes: dict[int, int] = {}
        self._mark: Any = None  # where the node being composed starts (an alias: where it is used)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._mark = self.parser.peek_event().start_mark
        if not self.parser.check_event(AliasEvent):
            self._count(1, self._mark)
        return super().compose_node(parent, index)

    def return_alias(self, a: Any) -> Any:
        if isinstance(a, CollectionNode) and a.end_mark is None:
            raise ComposerError(None, None, f"alias *{a.anchor} is used inside the value it names (a structure that "
                                            "contains itself)", self._mark)
        self._count(self._size(a), self._mark)
        return super().return_alias(a)

    def _size(self, node: Any) -> int:
        """How many values `node` stands for, with every alias inside it expanded."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return size

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > MAX_YAML_VALUES:
            raise _OverLimit(None, None, limit_message("the number of values, with aliases expanded,", MAX_YAML_VALUES,
                                                          "MAX_YAML_VALUES"), mark)


_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))
"""The YAML types portaflow's files may hold (what JSON holds, and dates, which to_plain writes as text)."""


class _LocatedConstructor(RoundTripConstructor):
    """ruamel's constructor whose every failure on a value says where the value is.

    Why: a few values fail in Python rather than in YAML (an integer of more than 4,300 digits, `!!bool maybe`);
    ruamel lets such a ValueError or KeyError through without a position."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        if str(tag or node.tag) not in _PLAIN_TAGS:  # `!!python/name:os.system`, `!!binary`, `!custom`: no plain value
            shown = str(tag or node.tag).replace("tag:yaml.org,2002:", "!!")
            raise ConstructorError(None, None, f"the YAML tag {shown} is not supported (a workflow or profile holds text, numbers, "
                                               "booleans, dates, lists and mappings)", node.start_mark)
        try:
            return super().construct_non_recursive_object(node, tag)
        except MarkedYAMLError:
            raise
        except Exception as exc:  # e.g. `!!bool maybe`: ruamel's own lookup fails with a KeyError
            raise ConstructorError(None, None, f"cannot read this value: {type(exc).__name__}: {exc}", node.start_mark) from None


def parse_yaml_text(text: str, display: str) -> YamlDocument:
    """Parse YAML text (duplicate keys are errors: silently keeping one hides a mistake), within the limits of
    portaflow.spec.limits: nesting depth and the number of values with aliases expanded."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise SpecError([Problem(Location(display), "", limit_message("the text's size in bytes", MAX_FILE_BYTES, "MAX_FILE_BYTES"))])
    too_deep = _flow_nesting_over(text, MAX_NESTING_DEPTH)
    if too_deep is not None:
        raise SpecError([Problem(_position_location(display, text, too_deep), "",
                                 limit_message("the nesting of mappings and lists", MAX_NESTING_DEPTH, "MAX_NESTING_DEPTH"))])
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.max_depth = MAX_NESTING_DEPTH
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _LocatedConstructor
    try:
        data = yaml.load(text)
    except MaxDepthExceededError as exc:
        raise SpecError([Problem(_mark_location(display, exc), "", limit_message("the nesting of mappings and lists", MAX_NESTING_DEPTH,
                                                                                 "MAX_NESTING_DEPTH"))]) from None
    except _OverLimit as exc:
        raise SpecError([Problem(_mark_location(display, exc), "", exc.problem)]) from None
    except MarkedYAMLError as exc:
        what = (exc.problem or "").strip() or "invalid YAML"
        context = f" {exc.context.strip()}" if exc.context else ""
        raise SpecError([Problem(_mark_location(display, exc), "", f"YAML syntax error: {what}{context}")]) from None
    except RecursionError:  # a nesting that ruamel's scanner follows before the depth limit is checked
        raise SpecError([Problem(Location(display), "", limit_message("the nesting of mappings and lists", MAX_NESTING_DEPTH,
                                                                      "MAX_NESTING_DEPTH"))]) from None
    except ReaderError as exc:  # a character YAML does not allow (a control character)
        raise SpecError([Problem(_position_location(display, text, exc.position), "",
                                 f"YAML syntax error: character #x{ord(exc.character) if isinstance(exc.character, str) else exc.character:04x} "
                                 f"is not allowed in YAML ({exc.reason})")]) from None
    except YAMLError as exc:  # ruamel raises a few other unmarked errors
        raise SpecError([Problem(_mark_location(display, exc), "", f"YAML error: {_unmarked(exc)}")]) from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise SpecError([Problem(Location(display, 1, 1), "", f"expected a mapping at the top level, found {type(data).__name__}")])
    return YamlDocument(display, data, text)


_FLOW_SIGNIFICANT = re.compile(r"""[\[\]{}'"#]""")


def _flow_nesting_over(text: str, limit: int) -> int | None:
    """The index of the first '[' or '{' nested deeper than `limit`, or None: a quick look before parsing.

    Why: ruamel's scanner looks ahead over every open bracket for each token, so `[[[[...` costs it seconds before
    its own depth check (MAX_NESTING_DEPTH, exact) can speak. This look counts brackets outside quotes and
    comments (a quote opens a quoted scalar only where a value starts); brackets inside plain text can only make it
    count more by one per unclosed bracket, which a real file does not have dozens of."""
    depth = 0
    i = 0
    while True:
        match = _FLOW_SIGNIFICANT.search(text, i)
        if match is None:
            return None
        i = match.start()
        char = text[i]
        if char in "[{":
            depth += 1
            if depth > limit:
                return i
        elif char in "]}":
            depth = max(0, depth - 1)
        elif char == "#":
            if i == 0 or text[i - 1] in " \t\n\r":
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
                continue
        elif _starts_a_value(text, i):
            i = _quote_end(text, i, char)
            continue
        i += 1


def _starts_a_value(text: str, i: int) -> bool:
    """Whether the quote at `i` opens a quoted scalar (at a value's start) rather than sitting inside plain text (it's)."""
    j = i - 1
    while j >= 0 and text[j] in " \t":
        j -= 1
    return j < 0 or text[j] in "\n\r:[{,-?"


def _quote_end(text: str, start: int, quote: str) -> int:
    """The index after the quoted scalar opened at `start` (the end of the text when it is not closed)."""
    i = start + 1
    while True:
        end = text.find(quote, i)
        if end < 0:
            return len(text)
        if quote == '"':
            backslashes = len(text[i:end]) - len(text[i:end].rstrip("\\"))
            if backslashes % 2:
                i = end + 1
                continue
        elif text.startswith("''", end):  # a quote inside single quotes is written twice
            i = end + 2
            continue
        return end + 1


def _mark_location(display: str, exc: Exception) -> Location:
    """file:line:column of a ruamel error (its problem's mark, else its context's, else a reader error's position)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return Location(display, mark.line + 1, mark.column + 1)
    return Location(display)


def _position_location(display: str, text: str, position: Any) -> Location:
    """file:line:column of a character index into `text`."""
    if not isinstance(position, int) or not 0 <= position <= len(text):
        return Location(display)
    line = text.count("\n", 0, position) + 1
    return Location(display, line, position - (text.rfind("\n", 0, position) + 1) + 1)


def _unmarked(exc: Exception) -> str:
    return " ".join(str(exc).split())


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
    if isinstance(value, (dt.date, dt.datetime)):  # an unquoted 2024-01-01: kept as the text it was
        return value.isoformat()
    if isinstance(value, str):
        return str(value)
    return value


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """A 'did you mean ...?' hint for a misspelt key or name, or None when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
