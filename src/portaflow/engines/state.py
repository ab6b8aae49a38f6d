"""What portaflow remembers between runs, per task, to decide what is stale.

A task's signature hashes everything that determines its outputs: its command (values included),
environment, container image, the signatures of the tasks that produce its inputs, and the content
of inputs nothing produces. A task reruns when its signature changed, an output is missing or was
changed by hand, or a task upstream reruns. Both engines get only the tasks chosen here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from portaflow.hashing import sha256_path, stat_key
from portaflow.plan.model import Plan, Task

STATE_DIR = ".portaflow/state"


class StateStore:
    """One JSON record per task under <workdir>/.portaflow/state/."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.directory = workdir / STATE_DIR

    def _path(self, task_id: str) -> Path:
        return self.directory / f"{task_id}.json"

    def read(self, task_id: str) -> dict | None:
        try:
            return json.loads(self._path(task_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write(self, task: Task, signature: str) -> dict[str, str]:
        """Record a finished task: its signature and each output's digest. Returns path -> sha256."""
        digests = {}
        outputs = {}
        for out in task.outputs.values():
            full = self.workdir / out.path
            digests[out.path] = sha256_path(full)
            outputs[out.path] = {"sha256": digests[out.path], "stat": stat_key(full)}
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_durably(self._path(task.id), json.dumps({"signature": signature, "outputs": outputs}, sort_keys=True))
        return digests

    def _write_durably(self, path: Path, text: str) -> None:
        """Write to a temporary name, fsync, rename, fsync the directory: after a crash or a power cut the
        record is either the old one or the new one, whole (a task recorded done stays done)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def forget(self, task_id: str) -> None:
        self._path(task_id).unlink(missing_ok=True)


def signatures(plan: Plan, workdir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """Every task's signature, in plan order. `extra` maps task id -> text that also counts (image, env)."""
    external_digest: dict[str, str] = {}
    out: dict[str, str] = {}
    producers = {p: t.id for t in plan.tasks for p in t.output_paths()}
    for task in plan.tasks:
        parts = {"command": task.command, "env": task.env, "extra": extra.get(task.id, ""), "inputs": {}}
        for path in task.input_paths():
            if path in producers:
                parts["inputs"][path] = out[producers[path]]
            else:
                if path not in external_digest:
                    full = workdir / path
                    external_digest[path] = sha256_path(full) if full.exists() else "missing"
                parts["inputs"][path] = external_digest[path]
        out[task.id] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return out


def stale_tasks(plan: Plan, store: StateStore, sigs: Mapping[str, str]) -> list[Task]:
    """Tasks to run, in plan order: changed, incomplete or edited ones, and everything downstream."""
    changed: set[str] = set()
    for task in plan.tasks:
        record = store.read(task.id)
        if record is None or record.get("signature") != sigs[task.id] or not _outputs_intact(store.workdir, record):
            changed.add(task.id)
    chosen = plan.downstream(changed)
    return [t for t in plan.tasks if t.id in chosen]


def _outputs_intact(workdir: Path, record: dict) -> bool:
    for path, info in record.get("outputs", {}).items():
        full = workdir / path
        if not full.exists() or stat_key(full) != info.get("stat"):
            return False
    return True
