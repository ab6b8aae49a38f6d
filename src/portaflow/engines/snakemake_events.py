"""What a Snakemake run reports, read from its log events (the JSON lines of portaflow's logger plugin).

Why events and not Snakemake's text log: Snakemake 9 hands its logger plugins structured records (a job's
id and rule when it starts, its id when it finishes, its rule, log files and the executor's job id when it
fails); `snakemake_logger_plugin_portaflow` writes them to a file, one JSON object a line, and this module
reads them, while Snakemake runs (for progress) and at the end. Snakemake's text log stays for people.

Two facts have no structured field in snakemake 9.27.1, and are read from an event's text, each in one
function: the exit status of a failed shell command (`exit_status`, in the text of the ERROR event that
precedes the job's JOB_ERROR) and the scheduler's job id a job was submitted as (`submitted_job`, from the
executor plugin's message; see there for the plugin versions).

Rule names are portaflow task ids (one rule per task), so the sets and maps here are keyed by task id.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EVENTS_FILE = "snakemake-events.jsonl"
"""The events file's name in a run's directory (beside snakemake.log, Snakemake's text output)."""

PLUGIN = "portaflow"
"""The logger plugin's name: the module `snakemake_logger_plugin_portaflow`, shipped with portaflow."""


def plugin_search_path() -> str:
    """The folder that holds the logger plugin's package, for Snakemake's PYTHONPATH.

    Why: Snakemake finds logger plugins by listing the modules on its path (`pkgutil.iter_modules`). A wheel puts
    the plugin in site-packages, where that works; an editable install of portaflow reaches its sources through an
    import hook, which such a listing does not see ("invalid choice: 'portaflow'"). Naming the folder always works."""
    import importlib.util

    spec = importlib.util.find_spec(f"snakemake_logger_plugin_{PLUGIN}")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"portaflow's Snakemake logger plugin (snakemake_logger_plugin_{PLUGIN}) is not installed")
    return str(Path(spec.origin).parent.parent)


def logger_args(events: Path) -> list[str]:
    """Snakemake's command-line arguments that make it write its log events to EVENTS (besides its text log)."""
    return ["--logger", PLUGIN, f"--logger-{PLUGIN}-events", str(events)]


@dataclass
class Failure:
    """A rule Snakemake reports as failed (its last try)."""

    exit_status: int | None = None
    """The exit status of its shell command, where Snakemake says (the local executor)."""
    logs: list[str] = field(default_factory=list)
    """The job logs Snakemake names: the rule's logs and the executor's (e.g. a pod's log copied back)."""
    external_jobid: str | None = None
    """The scheduler's job id, where the executor reports it with the error (remote executors do)."""


@dataclass
class RunEvents:
    """The facts portaflow reads of one Snakemake run; `apply` each event in the order Snakemake logged them."""

    finished: set[str] = field(default_factory=set)
    """Rules with a job Snakemake reports finished."""
    failures: dict[str, Failure] = field(default_factory=dict)
    """Rules whose last job failed."""
    external_jobs: list[str] = field(default_factory=list)
    """Every scheduler job id a job was submitted as, in order (a retry adds its own)."""
    job_of_rule: dict[str, str] = field(default_factory=dict)
    """Rule -> the scheduler job id of its last submission (where the submission names Snakemake's job)."""
    progress: tuple[int, int] | None = None
    """(done, total) as Snakemake last counted its jobs."""
    rule_of_job: dict[int, str] = field(default_factory=dict)
    """Snakemake's job id -> rule, from each job's JOB_INFO (FINISHED and submissions name only the job id)."""
    started_at: dict[str, float] = field(default_factory=dict)
    """Rule -> when Snakemake dispatched its last job (the JOB_INFO it logs then; epoch seconds)."""
    finished_at: dict[str, float] = field(default_factory=dict)
    """Rule -> when Snakemake reported its job finished (or failed)."""
    submission: re.Pattern[str] | None = None
    """The executor plugin's submission message (the site's adapter gives it; see `submitted_job`)."""
    _errors: list[str] = field(default_factory=list)
    """Texts of ERROR events not yet matched to a job's error."""

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        when = event.get("time")
        if kind == "job_info":
            self.rule_of_job[int(event["jobid"])] = event["rule_name"]
            if isinstance(when, (int, float)):
                self.started_at[event["rule_name"]] = float(when)
        elif kind == "job_finished":
            rule = self.rule_of_job.get(int(event["job_id"]))
            if rule is None:
                logger.debug("Snakemake finished job %s, which it never announced", event["job_id"])
                return
            self.finished.add(rule)
            if isinstance(when, (int, float)):
                self.finished_at[rule] = float(when)
            self.failures.pop(rule, None)  # a retry that worked
        elif kind == "progress":
            self.progress = (int(event["done"]), int(event["total"]))
        elif kind == "error":
            self._errors.append(str(event.get("msg") or ""))
        elif kind == "job_error":
            self._job_error(event)
            if isinstance(when, (int, float)) and event.get("rule_name"):
                self.finished_at[event["rule_name"]] = float(when)
        elif kind == "message":
            submitted = submitted_job(str(event.get("msg") or ""), self.submission)
            if submitted:
                jobid, external = submitted
                self.external_jobs.append(external)
                rule = self.rule_of_job.get(jobid) if jobid is not None else None
                if rule is not None:
                    self.job_of_rule[rule] = external

    def _job_error(self, event: dict[str, Any]) -> None:
        """A failed job: its logs, the executor's job id, and the exit status the ERROR event before it names.

        Which ERROR event: the latest unmatched one whose text holds the job's shell command (jobs that fail
        together log their errors before their JOB_ERRORs); for a job without a shell command, the latest."""
        shellcmd = event.get("shellcmd") or ""
        matching = [i for i, text in enumerate(self._errors) if shellcmd and shellcmd in text]
        if not shellcmd and self._errors:
            matching = [len(self._errors) - 1]
        status = exit_status(self._errors.pop(matching[-1])) if matching else None
        aux = event.get("aux") or {}
        external = aux.get("external_jobid") if isinstance(aux, dict) else None
        self.failures[event["rule_name"]] = Failure(
            exit_status=status,
            logs=[str(p) for p in event.get("log") or []],
            external_jobid=str(external) if external is not None else None,
        )


class EventFile:
    """Follows an event file as Snakemake appends to it: each `read` applies the complete lines added since."""

    def __init__(self, path: Path, events: RunEvents | None = None) -> None:
        self.path = path
        self.events = events if events is not None else RunEvents()
        self._offset = 0
        self._partial = b""

    def read(self) -> int:
        """Apply the events written since the last read; returns how many. A missing file has none (yet)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        count = 0
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("not an event in %s: %r", self.path, line[:200])
                continue
            self.events.apply(event)
            count += 1
        return count


def read_events(path: Path) -> RunEvents:
    """All of an event file, once Snakemake has finished writing it."""
    follower = EventFile(path)
    follower.read()
    return follower.events


# -- the two facts read from text --------------------------------------------------------------------
_EXIT_STATUS = re.compile(r"returned non-zero exit status (\d+)")

def exit_status(error_text: str) -> int | None:
    """The exit status of a failed shell command, from the text of Snakemake's ERROR event.

    Snakemake 9.27.1 logs the exception (a CalledProcessError inside a RuleException) as text only; the
    words are Python's own (`subprocess.CalledProcessError.__str__`)."""
    found = _EXIT_STATUS.findall(error_text)
    return int(found[-1]) if found else None


def submitted_job(message: str, pattern: re.Pattern[str] | None) -> tuple[int | None, str] | None:
    """(Snakemake's job id or None, the scheduler's job id) when MESSAGE reports a job's submission.

    Executor plugins report a submission to Snakemake through `report_job_submission(SubmittedJobInfo(job,
    external_jobid=...))`, which logs no event (snakemake-interface-executor-plugins 9.4.0), so the id is read
    from the message each plugin logs just before. The message is the plugin's own: its pattern, with the named
    groups `id` (the scheduler's job id) and optionally `job` (Snakemake's job id), is the scheduler adapter's
    `snakemake_submission` (None: the executor submits to no scheduler).
    """
    found = pattern.match(message) if pattern else None
    if not found:
        return None
    job = found.groupdict().get("job")
    return (int(job) if job else None), found["id"]
