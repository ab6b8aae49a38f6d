"""Progress while a run goes (done / running / failed) and the summary at its end."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

from portaflow.engines.base import TaskOutcome
from portaflow.plan.model import Task


@dataclass
class Progress:
    total: int
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True, emoji=False))
    done: int = 0
    failed: int = 0

    def event(self, kind: str, task: Task, outcome: TaskOutcome | None) -> None:
        if outcome is None:  # "submitted" events carry no outcome
            return
        if outcome.ok:
            self.done += 1
            mark = "[green]done[/green]"
        else:
            self.failed += 1
            mark = "[red]FAILED[/red]"
        running = max(0, self.total - self.done - self.failed)
        detail = "" if outcome.ok else f" - {escape(outcome.message)}"
        self.console.print(f"[{self.done + self.failed}/{self.total}] {mark} {escape(task.display)}{detail}  "
                           f"(done {self.done}, pending {running}, failed {self.failed})")
        sys.stderr.flush()
