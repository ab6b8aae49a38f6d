"""Progress while a run goes (done / running / queued / failed) and the summary at its end.

Two forms, chosen by where stderr goes: one line per finished task always (what logs and CI keep), and on a terminal
also a live bar (rich) below those lines with the counts, redrawn in place. A task counts as `running` once the engine
has handed it on (submitted) and every task it depends on in this run has finished; before that it is `queued`."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from portaflow.engines.base import TaskOutcome
from portaflow.plan.model import Task


def _stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


@dataclass
class Progress:
    total: int
    console: Console = field(default_factory=_stderr_console)
    ids: Iterable[str] = ()
    """The ids of the run's tasks (a dependency outside them is up to date: met). Empty: every dependency counts as met."""
    done: int = 0
    failed: int = 0
    live: bool | None = None
    """Show the live bar: None (the default) when the console is a terminal."""
    _submitted: set[str] = field(default_factory=set)
    _depends: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _finished: set[str] = field(default_factory=set)
    _bar: Any = None
    _bar_task: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> dict[str, int]:
        """done, running, queued, failed: what the bar shows."""
        in_run = set(self.ids)
        running = sum(1 for tid in self._submitted - self._finished
                      if all(d in self._finished or (in_run and d not in in_run) for d in self._depends.get(tid, ())))
        return {"done": self.done, "running": running, "queued": max(0, self.total - self.done - self.failed - running),
                "failed": self.failed}

    def event(self, kind: str, task: Task, outcome: TaskOutcome | None) -> None:
        with self._lock:  # engines report from their own threads (Parsl's callbacks)
            self._depends[task.id] = tuple(task.depends)
            if kind == "submitted":
                self._submitted.add(task.id)
            if outcome is not None and task.id not in self._finished:
                self._finished.add(task.id)
                self._submitted.add(task.id)
                self._line(task, outcome)
            self._update_bar()

    def _line(self, task: Task, outcome: TaskOutcome) -> None:
        if outcome.ok:
            self.done += 1
            mark = "[green]done[/green]"
        else:
            self.failed += 1
            mark = "[red]FAILED[/red]"
        pending = max(0, self.total - self.done - self.failed)
        detail = "" if outcome.ok else f" - {escape(outcome.message)}"
        self.console.print(f"[{self.done + self.failed}/{self.total}] {mark} {escape(task.display)}{detail}  "
                           f"(done {self.done}, pending {pending}, failed {self.failed})")
        sys.stderr.flush()

    def _update_bar(self) -> None:
        """Start the live bar on the first event (a quiet run sends none), then set its counts."""
        if self.live is None:
            self.live = self.console.is_terminal
        if not self.live:
            return
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

            self._bar = Bar(TextColumn("[bold]tasks"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
                            TimeElapsedColumn(), console=self.console, transient=False, redirect_stdout=True,
                            redirect_stderr=True)  # log records and prints go above the bar
            self._bar_task = self._bar.add_task("run", total=self.total, counts="")
            self._bar.start()
        c = self.counts()
        self._bar.update(self._bar_task, completed=c["done"] + c["failed"],
                         counts=f"done {c['done']} · running {c['running']} · queued {c['queued']} · failed {c['failed']}")

    def stop(self) -> None:
        """End the live bar (left on screen with its last counts); the run's lines stay above it."""
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
