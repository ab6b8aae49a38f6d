"""Bounded input: files that are not files, too large, too deep, alias bombs, too wide a fan-out, and templates
that cannot be filled are refused at once with exit 2, the file (and line and column where there is one), the
limit's name, and no traceback; `validate` refuses what `plan` would fail on."""

from __future__ import annotations

import os
import time

import pytest
from click.testing import CliRunner

from portaflow.cli import cli
from portaflow.errors import PlanError, SpecError
from portaflow.plan import make_plan
from portaflow.spec.limits import MAX_FANOUT, MAX_FILE_BYTES, MAX_NESTING_DEPTH, MAX_PLAN_PATHS, MAX_YAML_VALUES
from portaflow.spec.loading import load_site, load_workflow
from portaflow.spec.templates import TemplateError, check_template, fields, scan
from portaflow.spec.workflow import Workflow

from testlib import SITES, WORKFLOWS

WORDFREQ = str(WORKFLOWS / "examples" / "wordfreq.yaml")


def validate(*args: str) -> tuple[int, str]:
    """`portaflow validate ARGS` in this process: (exit code, everything printed)."""
    result = CliRunner().invoke(cli, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


def plan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["plan", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


def quickly(seconds: float = 5.0):
    """Asserts the block took less than `seconds` (a refusal must not read or expand first)."""

    class Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            elapsed = time.perf_counter() - self.start
            assert exc[0] is not None or elapsed < seconds, f"took {elapsed:.1f} s"

    return Timer()


# ---- files that are not YAML files -------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_end_at_once(device):
    with quickly():
        code, out = validate(device)
    assert code == 2 and f"{device}: is not a regular file (it is a character device)" in out and "Traceback" not in out


def test_fifo_and_directory_end_at_once(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening it to read would wait for ever
    with quickly():
        code, out = validate(str(fifo), str(tmp_path))
    assert code == 2
    assert f"{fifo}: is not a regular file (it is a FIFO)" in out and f"{tmp_path}: is not a regular file (it is a directory)" in out


def test_a_100_mb_file_is_refused_without_being_read(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as stream:
        stream.truncate(100 * 1024 * 1024)  # sparse: 100 MB long, nothing written
    with quickly():
        code, out = validate(str(big))
    assert code == 2 and f"{big}: the file's size in bytes (104,857,600) is more than the limit of {MAX_FILE_BYTES:,} (MAX_FILE_BYTES" in out


def test_a_site_profile_and_a_params_file_are_bounded_too(tmp_path):
    with quickly():
        code, out = plan(WORDFREQ, "--site", "/dev/zero")
    assert code == 2 and "/dev/zero: is not a regular file (it is a character device)" in out
    fifo = tmp_path / "site.yaml"
    os.mkfifo(fifo)
    with quickly():
        code, out = plan(WORDFREQ, "--site", str(fifo))
    assert code == 2 and "is not a regular file (it is a FIFO)" in out
    with quickly():
        code, out = plan(WORDFREQ, "--params-file", "/dev/urandom")
    assert code == 2 and "is not a regular file" in out


def test_not_utf8_is_located(write):
    path = write("bad.yaml", "name: x\n")
    path.write_bytes(b"name: x\nsteps: {a: {command: \"echo \xff\"}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:2:28: not UTF-8 text: byte 0xff" in out


def test_control_character_is_located(write):
    path = write("ctl.yaml", "name: x\nsteps: {a: {command: \"echo \x07\"}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:2:28: YAML syntax error: character #x0007 is not allowed in YAML" in out


# ---- what YAML can do to a reader -------------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
name: x
steps: {a: {command: echo}}
"""


def test_billion_laughs_is_refused_while_read(write):
    path = write("bomb.yaml", BILLION_LAUGHS)
    with quickly():
        code, out = validate(str(path))
    # the 5th line's aliases would make 9^5 values: over the limit at its first alias that crosses it
    assert code == 2 and f"{path}:5:" in out and f"is more than the limit of {MAX_YAML_VALUES:,} (MAX_YAML_VALUES" in out


def test_a_small_alias_use_still_works(write):
    path = write("alias.yaml", """\
        name: x
        parameters: {sizes: &s [1, 2, 3]}
        presets: {small: {sizes: *s}}
        steps:
          a: {command: "echo {sizes}", outputs: {o: a.txt}}
    """)
    assert load_workflow(path).workflow.presets["small"]["sizes"] == [1, 2, 3]


def test_an_alias_bomb_on_the_command_line_is_refused():
    bomb = "[" + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}" if i else "1"] * 9) + "]" for i in range(12)) + "]"
    with quickly():
        code, out = plan(WORDFREQ, "--param", f"shards={bomb}")
    assert code == 2 and "MAX_YAML_VALUES" in out and "Traceback" not in out


def test_an_alias_inside_its_own_value_is_refused(write):
    path = write("rec.yaml", "name: x\nparameters: {a: &r [1, *r]}\nsteps: {a: {command: echo}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:2:" in out and "alias *r is used inside the value it names" in out


@pytest.mark.parametrize("nesting", ["[" * 100_000, "{a: " * 1000, "[1, " * 1000,
                                     "\n" + "".join(" " * (2 * i + 2) + "a:\n" for i in range(200)) + " " * 402 + "1"])
def test_deep_nesting_is_refused_at_once(write, nesting):
    path = write("deep.yaml", f"name: x\nsteps: {{a: {{command: echo}}}}\nparameters:\n  p: {nesting}\n")
    with quickly():
        code, out = validate(str(path))
    assert code == 2 and f"is more than the limit of {MAX_NESTING_DEPTH} (MAX_NESTING_DEPTH" in out and f"{path}:" in out
    assert "Traceback" not in out and "recursion" not in out


def test_an_integer_too_long_for_python_is_located(write):
    path = write("long.yaml", "name: x\nparameters: {n: " + "9" * 5000 + "}\nsteps: {a: {command: echo}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:2:17: YAML syntax error: cannot read this value" in out


def test_a_tagged_value_that_cannot_be_made_is_located(write):
    path = write("tag.yaml", "name: x\nparameters: {b: !!bool maybe}\nsteps: {a: {command: echo}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:2:17: YAML syntax error: cannot read this value: KeyError" in out


@pytest.mark.parametrize("tag", ["!!python/name:os.system", "!!binary aGk=", "!custom 1", "!!set {a, b}", "<<"])
def test_tags_without_a_plain_value_are_refused_at_their_place(write, tag):
    path = write("tag.yaml", f"name: x\nsteps:\n  a:\n    python: m:f\n    args:\n      v: {tag}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:6:10: YAML syntax error: the YAML tag" in out and "is not supported" in out


def test_an_unquoted_date_is_text(write):
    path = write("date.yaml", "name: x\nversion: 2024-01-01\nsteps:\n  a: {python: 'm:f', args: {day: 2024-01-01}, outputs: {o: a.txt}}\n")
    loaded = load_workflow(path)
    assert loaded.workflow.version == "2024-01-01" and loaded.workflow.steps["a"].args == {"day": "2024-01-01"}
    make_plan(loaded.workflow, load_site("local", environ={}).site)  # the arguments are JSON: a date was not


def test_line_100_is_printed_as_a_number(write):
    path = write("long.yaml", "name: x\nsteps: {a: {command: echo}}\n" + "#\n" * 97 + "parameters: {n: {range: 2}}\n")
    code, out = validate(str(path))  # rich would print ':100:' as an emoji
    assert code == 2 and f"{path}:100:" in out


def test_a_merge_key_error_is_located(write):
    path = write("merge.yaml", "name: x\nsteps:\n  a: {<<: {command: 5}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:3:" in out and "Traceback" not in out


# ---- fan-out and plan size ---------------------------------------------------------------------------------------

def test_a_huge_range_is_refused_before_it_is_made(write):
    path = write("wide.yaml", """\
        name: x
        parameters: {n: 1000000000000}
        steps:
          a:
            scatter: {i: {range: "{n}"}}
            command: echo {i} > {outputs.o}
            outputs: {o: "out/{i}.txt"}
    """)
    with quickly():
        code, out = validate(str(path))
    assert code == 2 and f"{path}:5:26: steps.a.scatter.i.range: range 1000000000000's number of values (1,000,000,000,000) is more than" in out
    assert f"the limit of {MAX_FANOUT:,} (MAX_FANOUT" in out
    with quickly():
        code, out = plan(str(path), "--param", "n=10" + "0" * 40)
    assert code == 2 and "MAX_FANOUT" in out


def test_a_product_of_fan_outs_is_refused(write):
    path = write("product.yaml", """\
        name: x
        steps:
          a:
            scatter: {i: {range: 1000}, j: {range: 1000}}
            command: echo {i} {j} > {outputs.o}
            outputs: {o: "out/{i}/{j}.txt"}
    """)
    with quickly():
        code, out = validate(str(path))
    assert code == 2 and "step a's fan-out (1000 x 1000 values) into tasks (1,000,000) is more than the limit" in out and f"{path}:4:" in out


def test_a_gather_over_a_fan_out_in_every_task_of_another_is_refused():
    wf = Workflow.model_validate({"name": "x", "steps": {
        "a": {"scatter": {"i": {"range": 2000}}, "command": "true", "outputs": {"o": "a/{i}"}},
        "b": {"scatter": {"j": {"range": 2000}}, "command": "true", "inputs": {"all": "a/{i}"}, "outputs": {"o": "b/{j}"}},
    }})
    with quickly(), pytest.raises(PlanError, match=f"is more than the limit of {MAX_PLAN_PATHS:,} \\(MAX_PLAN_PATHS"):
        make_plan(wf, load_site("local", environ={}).site)


def test_range_with_step_zero_is_refused(write):
    path = write("zero.yaml", "name: x\nsteps:\n  a: {scatter: {i: {range: [0, 5, 0]}}, command: 'echo {i}', outputs: {o: 'o/{i}'}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:3:" in out and "range expects N, [start, stop] or [start, stop, step] of integers (step not 0)" in out


# ---- templates: checked by validate with file:line:col -----------------------------------------------------------

def test_unknown_field_in_a_command_fails_validate_with_line_and_column(write):
    path = write("unknown.yaml", """\
        name: x
        parameters: {seed: 1}
        steps:
          a:
            command: echo {sead} > {outputs.o}
            outputs: {o: out.txt}
    """)
    code, out = validate(str(path))
    assert code == 2
    assert f"{path}:5:19: steps.a.command: unknown field {{sead}} (did you mean 'seed'?" in out
    code, out = plan(str(path))  # plan refuses it the same way, before planning
    assert code == 2 and f"{path}:5:19:" in out


def test_bash_group_with_escapes_inside_fails_validate_not_plan(write):
    path = write("group.yaml", """\
        name: x
        steps:
          a:
            command: >-
              true
              && { echo a; echo {{b}}; } > {outputs.o}
            outputs: {o: out.txt}
    """)
    code, out = validate(str(path))
    assert code == 2 and "Traceback" not in out
    assert f"{path}:6:10: steps.a.command: '{{' opens a field that another '{{' interrupts" in out
    assert "a shell group '{ a; b; }' is written '{{ a; b; }}'" in out
    code, out = plan(str(path))
    assert code == 2 and "Traceback" not in out


def test_a_bash_group_written_with_doubled_braces_works(write):
    path = write("group.yaml", "name: x\nsteps:\n  a: {command: '{{ echo a; echo {{b}}; }} > {outputs.o}', outputs: {o: out.txt}}\n")
    loaded = load_workflow(path)
    task = make_plan(loaded.workflow, load_site("local", environ={}).site).tasks[0]
    assert task.command == "{ echo a; echo {b}; } > out.txt"


@pytest.mark.parametrize(("template", "message"), [
    ("echo {n:>3}", "may not use format specs or conversions"),
    ("echo {n!r}", "may not use format specs or conversions"),
    ("echo {a[0]}", "is not a name"),
    ("echo {}", "empty field"),
    ("echo }", "a single '}' outside a field"),
    ("echo {n", "never closed"),
    ("echo { n }", "is not a field"),
])
def test_malformed_fields_are_refused_with_their_column(write, template, message):
    path = write("bad.yaml", f"name: x\nparameters: {{n: 1}}\nsteps:\n  a: {{command: '{template}', outputs: {{o: o.txt}}}}\n")
    code, out = validate(str(path))
    assert code == 2 and f"{path}:4:22: steps.a.command: " in out and message in out  # column 22: the brace at fault


def test_each_place_has_its_own_fields(write):
    path = write("places.yaml", """\
        name: x
        parameters: {p: 1}
        steps:
          a:
            scatter: {i: [1, 2]}
            command: echo {i} {inputs.x} > {outputs.o}
            inputs: {x: "in/{p}.txt"}
            outputs: {o: "a/{i}.txt"}
          b:
            command: cat {inputs.all} {i} > {outputs.o}
            inputs: {all: "a/{i}.txt"}
            outputs: {o: "b/{inputs.all}.txt"}
            env: {V: "{q}"}
            args: {}
    """)
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    problems = [str(p) for p in err.value.problems]
    assert problems == [
        f"{path}:10:31: steps.b.command: field {{i}} is a scatter variable of step a, which step b does not scatter over "
        "(a step's paths, command and values use its own scatter variables; only its inputs may gather over another's)",
        f"{path}:12:21: steps.b.outputs.o: unknown field {{inputs.all}} (a step's outputs may use {{p}})",
        f"{path}:13:15: steps.b.env.V: unknown field {{q}} (a step's env may use {{p}})",
    ]


def test_every_shipped_workflow_passes_the_template_check():
    for path in WORKFLOWS.rglob("*.yaml"):
        load_workflow(path)


# ---- templates in site profiles ----------------------------------------------------------------------------------

def test_unknown_placeholder_in_gpu_syntax_fails_validate(write):
    path = write("s.yaml", """\
        name: s
        scheduler: slurm
        partitions: {gpu: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB, gpus_per_node: 2}}
        slurm:
          gpu_syntax: "--gpus={n}:{typo}"
    """)
    code, out = validate(str(path))
    assert code == 2 and f"{path}:5:15: slurm.gpu_syntax: unknown field {{typo}} (gpu_syntax may use {{model}}, {{n}})" in out
    code, out = plan(str(WORKFLOWS / "hep" / "zmumu-gpu.yaml"), "--site", str(path))  # before: KeyError, exit 1
    assert code == 2 and "Traceback" not in out and "{typo}" in out


@pytest.mark.parametrize("syntax", ["--gpus={n:>2}", "--gpus={0}", "--gpus={n.real}", "--gpus={n}}"])
def test_gpu_syntax_takes_no_format_tricks(write, syntax):
    path = write("s.yaml", f"name: s\nscheduler: slurm\npartitions: {{cpu: {{max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}}}}\n"
                           f"slurm: {{gpu_syntax: '{syntax}'}}\n")
    with pytest.raises(SpecError, match="slurm.gpu_syntax"):
        load_site(str(path), environ={})


def test_shipped_profiles_pass_the_template_check():
    for path in SITES.glob("*.yaml"):
        load_site(str(path), environ={})


# ---- the template language itself -------------------------------------------------------------------------------

def test_scan_keeps_escapes_and_offsets():
    pieces = list(scan("a {{b}} {c} }}{d}"))
    assert [(p.offset, p.literal, p.name) for p in pieces] == [(0, "a {b} ", None), (8, "", "c"), (11, " }", None), (14, "", "d")]
    assert fields("{inputs.x}-{resources.cores}") == ["inputs.x", "resources.cores"]


def test_check_template_reports_each_field_once_and_fields_before_a_broken_brace():
    problems = check_template("{x} {x} {y} {", {"y"})
    assert [(p.offset, p.fragment) for p in problems] == [(0, "{x}"), (12, "{")]
    assert isinstance(problems[1], TemplateError) and "never closed" in problems[1].message


def test_scan_fills_as_str_format_did_for_every_valid_template():
    """The planner used string.Formatter.parse before: what it accepted and filled, scan fills the same."""
    import string

    from portaflow.spec.templates import render

    templates = ["a {{b}} {c} }}{d}", "{{{x}}}", "awk '{{print $2\"\\t\"$1}}' > {outputs.counts}", "{{ echo a; }} {i}", "plain", ""]
    for path in WORKFLOWS.rglob("*.yaml"):
        steps = load_workflow(path).workflow.steps.values()
        templates += [s.command for s in steps if s.command] + [p for s in steps for p in s.inputs.values() if isinstance(p, str)]
    for template in templates:
        expected = "".join(literal + (f"<{name}>" if name is not None else "") for literal, name, _, _ in string.Formatter().parse(template))
        assert render(template, lambda name: f"<{name}>") == expected, template
