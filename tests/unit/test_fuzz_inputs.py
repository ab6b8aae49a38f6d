"""A fuzzer of malformed workflows and site profiles: every input ends in exit 0 or 2, never a traceback.

Why: a user's or an admin's typo must get a message that says where it is (file:line) and nothing written,
whatever the typo is. Hand-written tests cover the mistakes someone thought of; this test mutates the shipped
workflows and profiles at random (delete keys, swap types, random bytes, tabs, duplicate keys, unicode, deep
nesting, alias bombs, huge numbers, broken templates) and runs `validate`, then `plan` when the mutant is valid,
in this process (the CLI's own click command, as a user runs it, without the cost of a subprocess per case).

Seeded and sampled: PORTAFLOW_FUZZ_SEED (default 14) and PORTAFLOW_FUZZ_CASES (default 1000) choose the cases; a
failure prints the seed, the case number, the mutations and the mutant, so it can be replayed. Bounded in time:
each command gets CASE_SECONDS (SIGALRM), so an input that makes portaflow hang fails its case instead of the run.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from portaflow.cli import cli

from testlib import SITES, WORKFLOWS

SEED = int(os.environ.get("PORTAFLOW_FUZZ_SEED", "14"))
CASES = int(os.environ.get("PORTAFLOW_FUZZ_CASES", "1000"))
CASE_SECONDS = 10
"""Longest one command of one case may take (the slowest seen here: well under a second)."""

BASES = sorted(WORKFLOWS.rglob("*.yaml")) + sorted(SITES.glob("*.yaml"))
WORDFREQ = WORKFLOWS / "examples" / "wordfreq.yaml"
GPU_WORKFLOW = WORKFLOWS / "hep" / "zmumu-gpu.yaml"

FILE_LEVEL_ERRORS = ("is not a regular file", "MAX_FILE_BYTES", "file not found", "cannot read file")
"""Messages about a file as a whole, which have no line to point at."""


# ---- mutations of the text -------------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return text.split("\n")


def _random_line(rng: random.Random, text: str) -> int:
    return rng.randrange(len(_lines(text)))


def delete_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    del lines[_random_line(rng, text)]
    return "\n".join(lines)


def duplicate_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = _random_line(rng, text)
    lines.insert(i, lines[i])
    return "\n".join(lines)


def swap_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def tab_indent(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    indented = [i for i, line in enumerate(lines) if line.startswith(" ")] or [0]
    i = rng.choice(indented)
    lines[i] = "\t" * rng.randint(1, 2) + lines[i].lstrip(" ")
    return "\n".join(lines)


def shift_indent(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = _random_line(rng, text)
    lines[i] = lines[i][rng.randint(1, 3):] if rng.random() < 0.5 else " " * rng.randint(1, 3) + lines[i]
    return "\n".join(lines)


def truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


YAML_PUNCTUATION = ":-[]{}\"'&*!|>#%@`,?"


def flip_punctuation(rng: random.Random, text: str) -> str:
    spots = [i for i, c in enumerate(text) if c in YAML_PUNCTUATION] or [0]
    i = rng.choice(spots)
    return text[:i] + rng.choice(YAML_PUNCTUATION) + text[i + 1:]


def insert_bytes(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    i = rng.randrange(len(data) + 1)
    junk = bytes(rng.choice([0, 1, 7, 8, 27, 127, 0x80, 0xC3, 0xFE, 0xFF, rng.randrange(256)]) for _ in range(rng.randint(1, 8)))
    return data[:i] + junk + data[i:]


UNICODE = ["é", "中文", "\U0001F600", "\u202e", "\u200b", "\ufeff", "\u0301", "\u2028", "\x85", "\u00a0", "ǅ", "ﬁ", "𝔘", "\ud7ff"]


def insert_unicode(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + "".join(rng.choice(UNICODE) for _ in range(rng.randint(1, 4))) + text[i:]


def line_endings(rng: random.Random, text: str) -> str:
    return rng.choice([text.replace("\n", "\r\n"), text.replace("\n", "\r"), "\ufeff" + text, text + "\n---\nname: again\n",
                       text + "\n...\n", "%YAML 1.1\n---\n" + text, "%YAML 9.9\n---\n" + text, "%TAG ! tag:x,2000:\n---\n" + text])


def _value_spots(text: str) -> list[re.Match[str]]:
    """`key: value` spots on a line (the value may be empty: a mapping or list follows)."""
    return list(re.finditer(r"(?m)^(?P<indent>[ -]*)(?P<key>[A-Za-z_][\w.-]*):(?P<value>[^\n]*)$", text))


def _replace_value(rng: random.Random, text: str, new: str) -> str:
    spots = _value_spots(text)
    if not spots:
        return text + new
    m = rng.choice(spots)
    return text[: m.start("value")] + " " + new + text[m.end("value"):]


def _bomb(levels: int, width: int) -> str:
    out = ["&l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        out.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return out[-1] if levels == 1 else "[" + ", ".join(out) + "]"


def alias_bomb(rng: random.Random, text: str) -> str:
    bomb = _bomb(rng.randint(3, 12), rng.randint(5, 12))
    if rng.random() < 0.3:
        return f"bomb: {bomb}\n" + text
    return _replace_value(rng, text, bomb)


def recursive_alias(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(["&r [*r]", "&r {a: *r}", "&r [1, [2, *r]]"]))


def merge_key(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(["{<<: {a: 1}}", "&m {x: 1}", "{<<: [*m]}", "{<<: *nothing}", "{<<: 5}"]))


def deep_nesting(rng: random.Random, text: str) -> str:
    depth = rng.choice([30, 70, 200, 1000, 5000, 50000])
    if rng.random() < 0.5:
        new = "[" * depth + "]" * depth
    elif rng.random() < 0.5:
        new = "{a: " * depth + "1" + "}" * depth
    else:
        new = "\n" + "\n".join(" " * (2 * i + 2) + "a:" for i in range(min(depth, 2000))) + " 1"
    return _replace_value(rng, text, new)


HUGE = ["1" + "0" * 40, "1" + "0" * 5000, "-1", "0", "1e999", "-1e999", ".inf", ".nan", "-.inf", "0x" + "f" * 30, "0o777777777777777777777",
        "1_000_000_000_000_000", "99999999999999999999d", "1e308GB", "9" * 30 + "m", "4" * 25 + "GB", "2-99999999999:00:00", "1.5", "0.0000001",
        "!!float 1e400", "!!int 0b" + "1" * 80, "1:2:3:4:5", "12:60", "-0"]


def huge_number(rng: random.Random, text: str) -> str:
    numbers = list(re.finditer(r"(?<![\w.])\d+(?:\.\d+)?[A-Za-z]*(?![\w.])", text))
    new = rng.choice(HUGE)
    if not numbers or rng.random() < 0.2:
        return _replace_value(rng, text, new)
    m = rng.choice(numbers)
    return text[: m.start()] + new + text[m.end():]


TAGS = ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!binary aGVsbG8=", "!!timestamp 2001-12-14",
        "!!set {a, b}", "!!omap [a: 1]", "!custom x", "!!str", "!!map []", "!!seq {}", "!!null x", "!!bool maybe", "!<tag:yaml.org,2002:int> x"]


def yaml_tag(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(TAGS))


TEMPLATE_BITS = ["{", "}", "{nope}", "{0}", "{}", "{shards!r}", "{shards:>3}", "{{", "}}", "{ echo a; echo {{b}}; }", "{ echo a; }",
                 "{{ echo a; }}", "{inputs.zzz}", "{outputs}", "{outputs.}", "{a.b}", "{a[0]}", "{n}{model}", "{model}", "{n.real}",
                 "{n[0]}", "{n:{n}}", "{{n}}", "{shard}", "{resources.cores}", "{resources.nope}", "{i}", "{dataset}", "{\u00e9}", "{ n }"]


def template_fragment(rng: random.Random, text: str) -> str:
    strings = [m for m in _value_spots(text) if m.group("value").strip()] or _value_spots(text)
    if not strings:
        return text + rng.choice(TEMPLATE_BITS)
    m = rng.choice(strings)
    value = m.group("value")
    i = rng.randrange(len(value) + 1)
    bit = rng.choice(TEMPLATE_BITS)
    new = value[:i] + bit + value[i:]
    if rng.random() < 0.5:  # inside quotes, so that YAML keeps the braces as text
        new = " " + repr(new.strip() or bit).replace("\\\\", "\\")
    return text[: m.start("value")] + new + text[m.end("value"):]


def long_value(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(["x" * 100_000, "'" + "{x}" * 20_000 + "'", "[" + ", ".join(["1"] * 2_000) + "]"]))


# ---- mutations of the data -------------------------------------------------------------------------------------

_SAFE = YAML(typ="safe", pure=True)
_SAFE.default_flow_style = False
_SAFE.width = 4096


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


STRANGE_VALUES: list[Any] = [None, True, False, 0, -1, 10**40, -(10**40), 1.5e308, float("inf"), float("nan"), "", " ", "x" * 5000,
                             [], {}, [1, 2], {"a": 1}, [[[]]], "{nope}", "12x", "1e9GB", "-5m", "99999999d", "0s", "auto", "none",
                             "-", "~", "'", "\x00", "é", "a\nb", "../..", "/etc/passwd", ".", "$HOME", "$(touch pwned)", {"range": 10**9},
                             {"range": [0, 10**12]}, {"range": "{nope}"}, {"range": [1, 2, 3, 4]}, {"range": -3}, ["a", "a"]]


def set_value(rng: random.Random, data: Any) -> Any:
    path = rng.choice([p for p in _paths(data) if p])
    _parent(data, path)[path[-1]] = rng.choice(STRANGE_VALUES)
    return data


def delete_key(rng: random.Random, data: Any) -> Any:
    path = rng.choice([p for p in _paths(data) if p])
    parent = _parent(data, path)
    del parent[path[-1]]
    return data


def rename_key(rng: random.Random, data: Any) -> Any:
    paths = [p for p in _paths(data) if p and isinstance(p[-1], str)]
    if not paths:
        return data
    path = rng.choice(paths)
    parent = _parent(data, path)
    key = path[-1]
    new = rng.choice([key[:-1] or "x", key + "s", key.upper(), "é" + key, "1" + key, key + " ", "", "a.b", "x" * 300, "<<", "-"])
    parent[new] = parent.pop(key)
    return data


def wrap_value(rng: random.Random, data: Any) -> Any:
    path = rng.choice([p for p in _paths(data) if p])
    parent = _parent(data, path)
    value = parent[path[-1]]
    parent[path[-1]] = rng.choice([[value], {"x": value}, str(value), [value, value]])
    return data


def fan_out(rng: random.Random, data: Any) -> Any:
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, dict) or not steps:
        return set_value(rng, data)
    step = steps[rng.choice(list(steps))]
    if not isinstance(step, dict):
        return data
    big = rng.choice([10**4, 10**6, 10**9, 10**15])
    step["scatter"] = rng.choice([{"i": {"range": big}}, {"i": {"range": 3000}, "j": {"range": 3000}},
                                  {f"v{k}": {"range": 30} for k in range(6)}, {"i": list(range(rng.choice([10, 500])))}])
    return data


DATA_MUTATIONS: list[Callable[[random.Random, Any], Any]] = [set_value, delete_key, rename_key, wrap_value, fan_out]
DATA_NAMES = {m.__name__ for m in DATA_MUTATIONS}
TEXT_MUTATIONS: list[Callable[[random.Random, str], str | bytes]] = [
    delete_line, duplicate_line, swap_lines, tab_indent, shift_indent, truncate, flip_punctuation, insert_bytes, insert_unicode,
    line_endings, alias_bomb, recursive_alias, merge_key, deep_nesting, huge_number, yaml_tag, template_fragment, long_value,
]


def _dump(data: Any) -> str:
    out = StringIO()
    _SAFE.dump(data, out)
    return out.getvalue()


@dataclass
class Case:
    number: int
    base: Path
    mutations: list[str] = field(default_factory=list)
    content: bytes = b""

    @property
    def is_site(self) -> bool:
        return self.base.parent == SITES

    def describe(self) -> str:
        shown = self.content[:1500].decode("utf-8", "backslashreplace")
        more = f"\n... ({len(self.content)} bytes in all)" if len(self.content) > 1500 else ""
        return (f"seed {SEED} case {self.number}: {self.base.relative_to(self.base.parents[1])} with {', '.join(self.mutations)}\n"
                f"--- mutant ---\n{shown}{more}")


def make_case(number: int, base_texts: dict[Path, str]) -> Case:
    rng = random.Random(f"{SEED}:{number}")
    base = rng.choice(BASES)
    case = Case(number, base)
    text: str | bytes = base_texts[base]
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        if isinstance(text, bytes):
            break
        if (not case.mutations or case.mutations[-1] in DATA_NAMES) and rng.random() < 0.35:  # data first, on YAML that loads
            mutation = rng.choice(DATA_MUTATIONS)
            data = _SAFE.load(text)
            text = _dump(mutation(rng, data))
        else:
            mutation = rng.choice(TEXT_MUTATIONS)
            text = mutation(rng, text)
        case.mutations.append(mutation.__name__)
    case.content = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return case


# ---- running a case --------------------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """A BaseException, so that no `except Exception` in portaflow can mistake it for a problem of the input."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    command: list[str]
    exit_code: int
    output: str
    crash: BaseException | None


def invoke(runner: CliRunner, args: list[str]) -> Outcome:
    try:
        with time_limit(CASE_SECONDS):
            result = runner.invoke(cli, args, catch_exceptions=True)
    except CaseTimeout as exc:
        return Outcome(args, -1, "", exc)
    crash = result.exception if result.exception is not None and not isinstance(result.exception, SystemExit) else None
    return Outcome(args, result.exit_code, result.output, crash)


def problems_with(outcome: Outcome, case_file: Path) -> list[str]:
    """What is wrong with how portaflow answered (an empty list: exit 0 or 2, a message that says where)."""
    out = []
    if outcome.crash is not None:
        out.append(f"crashed: {type(outcome.crash).__name__}: {outcome.crash}")
    if "Traceback" in outcome.output:
        out.append("printed a traceback")
    if outcome.exit_code not in (0, 2):
        out.append(f"exit code {outcome.exit_code}")
    if outcome.command[0] == "validate" and outcome.exit_code == 2:
        if str(case_file) not in outcome.output:
            out.append("the error does not name the file")
        elif not re.search(re.escape(str(case_file)) + r":\d+", outcome.output) and not any(m in outcome.output for m in FILE_LEVEL_ERRORS):
            out.append("the error has no line number")
    return out


def run_case(runner: CliRunner, case: Case, scratch: Path) -> list[str]:
    path = scratch / f"case{case.number}.yaml"
    path.write_bytes(case.content)
    outcomes = [invoke(runner, ["validate", str(path)])]
    if outcomes[0].exit_code == 0:  # a valid mutant is planned too: on a site, or (a profile) with a workflow
        if case.is_site:
            workflow = GPU_WORKFLOW if case.number % 2 else WORDFREQ
            outcomes.append(invoke(runner, ["plan", str(workflow), "--site", str(path)]))
        else:
            outcomes.append(invoke(runner, ["plan", str(path), "--site", "slurm-local" if case.number % 2 else "local"]))
    report = []
    for outcome in outcomes:
        report.extend(f"{' '.join(outcome.command[:1])}: {p}\n{outcome.output[-2000:]}" for p in problems_with(outcome, path))
    path.unlink()
    left = sorted(p.name for p in scratch.iterdir())
    if left:
        report.append(f"wrote {left}")
    return report


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, which every command must leave empty."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("PORTAFLOW_SITE_")]:
        monkeypatch.delenv(key)
    return tmp_path


def test_fuzzed_workflows_and_profiles_exit_2_with_a_location(scratch: Path) -> None:
    base_texts = {p: p.read_text() for p in BASES}
    runner = CliRunner()
    failures: list[str] = []
    start = time.perf_counter()
    for number in range(CASES):
        case = make_case(number, base_texts)
        report = run_case(runner, case, scratch)
        if report:
            failures.append(case.describe() + "\n--- what went wrong ---\n" + "\n".join(report))
    elapsed = time.perf_counter() - start
    print(f"fuzz: {CASES} cases (seed {SEED}) in {elapsed:.1f} s, {len(failures)} failed")
    assert not failures, f"{len(failures)} of {CASES} cases failed; the first ones:\n\n" + "\n\n".join(failures[:5])
