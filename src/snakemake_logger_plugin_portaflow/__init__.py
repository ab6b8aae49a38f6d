"""Snakemake logger plugin `portaflow`: Snakemake's structured log events as JSON lines, for portaflow to read.

Why a logger plugin: Snakemake 9 hands every log record to logger plugins with its structured fields (the
LogEvent and e.g. a job's id, rule and log files), so portaflow reads what Snakemake means instead of
scraping the text it prints for people, which changes with any release. Snakemake finds the plugin by its
module name (`snakemake_logger_plugin_<name>`, snakemake-interface-logger-plugins' registry), and
`--logger portaflow --logger-portaflow-events PATH` turns it on. The plugin adds a handler: Snakemake's own
text output still goes to stderr as before (the handler does not write to a stream).

One line per record: `{"event": <LogEvent value>, "time": <when it was logged>, ...the fields portaflow reads}` for the structured events
below, and `{"event": "message", "level": ..., "msg": ...}` for records without an event (INFO and above).
The plain messages are kept because Snakemake has no structured event for a job's submission: executor plugins
call `report_job_submission(SubmittedJobInfo(job, external_jobid=...))`, which logs nothing structured, and
say the scheduler's job id only in a message (read by `portaflow.engines.snakemake_events`).
Each line is flushed when written, so a reader sees it while Snakemake runs.

Written against snakemake 9.27.1 and snakemake-interface-logger-plugins 2.1.0.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

# No `from __future__ import annotations` here: Snakemake reads the settings' field types at run time.

FIELDS: dict[str, tuple[str, ...]] = {
    "workflow_started": ("workflow_id",),
    "job_info": ("jobid", "rule_name", "log", "local"),
    "job_started": ("jobs",),
    "job_finished": ("job_id",),
    "job_error": ("jobid", "rule_name", "rule_msg", "log", "aux", "shellcmd"),
    "group_error": ("groupid", "aux_logs"),
    "progress": ("done", "total"),
    "error": ("exception",),
}
"""The events written and the fields of each; an event's other fields (a job's resources, its input and
output lists, the rule graph) are left out: portaflow does not read them and they can be large."""

WITH_MESSAGE = {"message", "error", "job_error"}
"""Events whose text is written too (`msg`): an error's text says what went wrong (and how a command exited)."""


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    # Optional[...], not `str | None`: Snakemake hands the annotation to argparse, which needs typing's form.
    events: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "File to append Snakemake's log events to, one JSON object per line.",
            "required": True,
            "metavar": "PATH",
        },
    )


def event_line(record: logging.LogRecord) -> dict[str, Any] | None:
    """The JSON object written for RECORD, or None when it is not written (DEBUG, or an event not in FIELDS)."""
    event = getattr(record, "event", None)
    if event is None:
        if record.levelno < logging.INFO:
            return None
        name = "message"
        line: dict[str, Any] = {"event": name, "level": record.levelname}
    else:
        name = str(event)  # LogEvent is a StrEnum: its value, e.g. "job_finished"
        if name not in FIELDS:
            return None
        line = {"event": name}
        line.update({key: getattr(record, key) for key in FIELDS[name] if hasattr(record, key)})
    if name in WITH_MESSAGE:
        line["msg"] = record.getMessage()
    line["time"] = record.created  # when Snakemake logged it (epoch seconds): a task's start and end in the run record
    return line


class LogHandler(LogHandlerBase):
    """Appends `event_line` of every record to the file named by `--logger-portaflow-events`."""

    stream: TextIO | None = None

    def __post_init__(self) -> None:
        assert isinstance(self.settings, LogHandlerSettings) and self.settings.events
        self.baseFilename = str(self.settings.events)  # what Snakemake lists among the run's log files
        self.stream = open(self.baseFilename, "a", encoding="utf-8")  # noqa: SIM115 (open while Snakemake runs; closed in close())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = event_line(record)
            if line is None or self.stream is None:
                return
            self.stream.write(json.dumps(line, default=str) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 (logging.Handler's contract: report, never raise)
            self.handleError(record)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False  # so Snakemake keeps its own text output on stderr

    @property
    def writes_to_file(self) -> bool:
        return True

    @property
    def has_filter(self) -> bool:
        return True  # every record, whatever --quiet says; event_line chooses

    @property
    def has_formatter(self) -> bool:
        return True  # the lines are JSON, not Snakemake's text

    @property
    def needs_rulegraph(self) -> bool:
        return False
