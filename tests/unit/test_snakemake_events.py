"""Snakemake's log events as portaflow reads them: recorded here from a real Snakemake run with portaflow's
logger plugin (found by Snakemake's own plugin discovery), then read by engines.snakemake_events."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.tests import TestLogHandlerBase

import snakemake_logger_plugin_portaflow as plugin
from portaflow.engines.snakemake_events import EventFile, RunEvents, exit_status, logger_args, read_events

# The module-scoped fixtures render or run once per test process: one xdist worker takes the whole module.
pytestmark = pytest.mark.xdist_group("snakemake-events")

SNAKEFILE = textwrap.dedent("""\
    rule all:
        input: "b.txt", "after_c.txt", "d.txt", "retried.txt"
    rule a:
        output: "a.txt"
        shell: "echo a > {output}"
    rule b:
        input: "a.txt"
        output: "b.txt"
        shell: "echo b > {output}"
    rule c:
        input: "a.txt"
        output: "c.txt"
        log: "c.log"
        shell: "echo c went wrong > {log}; exit 3"
    rule d:
        input: "a.txt"
        output: "d.txt"
        log: "d.log"
        shell: "echo d went wrong > {log}; exit 5"
    rule after_c:
        input: "c.txt"
        output: "after_c.txt"
        shell: "cp {input} {output}"
    rule retried:
        output: "retried.txt"
        retries: 1
        shell: "if [ -e tried ]; then echo ok > {output}; else touch tried; exit 4; fi"
""")
"""a -> b and a -> c (exits 3) -> after_c (never runs) and a -> d (exits 5); `retried` fails once (4), then works."""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """The events file of a real Snakemake run of SNAKEFILE on the local executor (the run fails: c and d)."""
    workdir = tmp_path_factory.mktemp("snakemake-events")
    (workdir / "Snakefile").write_text(SNAKEFILE)
    events = workdir / "events.jsonl"
    # The plugin is found the way Snakemake finds any logger plugin: a top-level module on its sys.path.
    plugin_root = str(Path(plugin.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [plugin_root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--keep-going", *logger_args(events)],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error in rule c:" in result.stderr, "Snakemake's own text output is no longer written"
    assert events.is_file(), result.stderr
    return events


def test_finished_rules(recorded):
    assert read_events(recorded).finished == {"a", "b", "retried"}


def test_failed_rules_with_exit_status_and_logs(recorded):
    failures = read_events(recorded).failures
    assert set(failures) == {"c", "d"}  # `retried` worked on its second try; after_c never ran
    assert (failures["c"].exit_status, failures["c"].logs) == (3, ["c.log"])
    assert (failures["d"].exit_status, failures["d"].logs) == (5, ["d.log"])
    assert (recorded.parent / failures["c"].logs[0]).read_text() == "c went wrong\n"
    assert failures["c"].external_jobid is None  # the local executor submits nothing


def test_each_rule_s_start_and_end(recorded):
    """When Snakemake dispatched each rule's (last) job and reported it finished or failed: the run record's times."""
    events = read_events(recorded)
    assert {"a", "b", "c", "d", "retried"} <= set(events.started_at) and "after_c" not in events.started_at
    assert {"a", "b", "c", "d", "retried"} <= set(events.finished_at)
    for rule in ("a", "b", "c", "d", "retried"):
        assert events.started_at[rule] <= events.finished_at[rule]
    assert events.finished_at["a"] <= events.started_at["b"]  # b waited for a


def test_progress_counts_every_job(recorded):
    events = read_events(recorded)
    assert events.progress == (3, 7)  # a, b, retried of all seven (all, after_c never ran)
    assert events.external_jobs == [] and events.job_of_rule == {}


def test_a_file_read_while_written_gives_the_same_facts(recorded):
    """Snakemake appends as it runs: a reader that catches partial lines must end where a whole read does."""
    data = recorded.read_bytes()
    growing = recorded.parent / "growing.jsonl"
    growing.write_bytes(b"")
    follower = EventFile(growing)
    seen = 0
    for start in range(0, len(data), 37):  # 37 bytes at a time: most reads end inside a line
        with open(growing, "ab") as f:
            f.write(data[start:start + 37])
        seen += follower.read()
    whole = read_events(recorded)
    assert seen == len(data.splitlines())
    assert (follower.events.finished, follower.events.failures, follower.events.progress) == (whole.finished, whole.failures, whole.progress)


def test_errors_logged_together_go_to_their_own_jobs(recorded):
    """Two jobs that fail at once can log both errors before either JOB_ERROR: each status goes by its command."""
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    errors = {e["rule_name"]: e for e in lines if e["event"] == "job_error"}
    texts = {rule: next(e for e in lines if e["event"] == "error" and errors[rule]["shellcmd"] in e["msg"]) for rule in ("c", "d")}
    events = RunEvents()
    for event in (texts["c"], texts["d"], errors["c"], errors["d"]):
        events.apply(event)
    assert (events.failures["c"].exit_status, events.failures["d"].exit_status) == (3, 5)


def test_a_missing_file_has_no_events(tmp_path):
    follower = EventFile(tmp_path / "not-yet.jsonl")
    assert follower.read() == 0 and follower.events == RunEvents()


def test_exit_status_is_read_from_python_s_own_words():
    assert exit_status("CalledProcessError in file x, line 3:\nCommand 'false' returned non-zero exit status 1.") == 1
    assert exit_status("WorkflowError:\nAt least one job did not complete successfully.") is None


class TestPortaflowLogHandler(TestLogHandlerBase):
    """snakemake-interface-logger-plugins' own checks of a logger plugin, plus what the lines hold."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _events_file(self, tmp_path):
        self.events = tmp_path / "events.jsonl"

    def get_log_handler_cls(self):
        return plugin.LogHandler

    def get_log_handler_settings(self):
        return plugin.LogHandlerSettings(events=str(self.events))

    def test_lines_hold_the_fields_portaflow_reads(self):
        handler = self._create_handler()
        handler.emit(self._create_event_record(LogEvent.JOB_FINISHED, msg="Finished jobid: 1 (Rule: x)", job_id=1))
        handler.emit(self._create_event_record(LogEvent.RULEGRAPH, rulegraph={"x": []}))  # not written
        handler.emit(logging.LogRecord("snakemake", logging.DEBUG, "f.py", 1, "chatter", None, None))  # not written
        handler.emit(logging.LogRecord("snakemake", logging.INFO, "f.py", 1, "Job %d has been submitted", (4,), None))
        handler.close()
        lines = [json.loads(line) for line in self.events.read_text().splitlines()]
        assert all(isinstance(line.pop("time"), float) for line in lines)  # when Snakemake logged it (a task's start, end)
        assert lines == [{"event": "job_finished", "job_id": 1},
                         {"event": "message", "level": "INFO", "msg": "Job 4 has been submitted"}]
