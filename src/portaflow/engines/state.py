"""What portaflow remembers between runs, per task, to decide what is stale.

A task's signature hashes everything that determines its outputs: its command (values included),
environment, container image, the signatures of the tasks that produce its inputs, and the content
of inputs nothing produces. A task reruns when its signature changed, an output is missing or was
changed by hand, or a task upstream reruns. Both engines get only the tasks chosen here.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from portaflow.errors import InputError
from portaflow.hashing import sha256_path, stat_key
from portaflow.plan.model import Plan, Task

log = logging.getLogger(__name__)

STATE_DIR = ".portaflow/state"
LOCK_FILE = ".portaflow/lock"


class WorkdirBusy(InputError):
    """Another run holds the work directory (exit 2: nothing was started or changed)."""


class WorkdirLock:
    """One run per work directory: an exclusive `flock` on <workdir>/.portaflow/lock, which names its holder.

    Why flock: the kernel releases it when the holder dies, however it dies (kill -9 included), so a lock can
    never outlive its run; the file's content (run id, pid, host, start) is only for messages. A second run
    fails at once with who holds the directory; a run that finds the content of a holder that is gone takes
    the lock over with a warning (its processes, if any survive it, no longer hold the directory). The
    descriptor is not inherited by the engines' processes (Python opens it close-on-exec)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.path = workdir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, run_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkdirBusy(
                f"work directory {self.workdir} is in use by run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')}, since {holder.get('started', '?')}); wait for it to end or stop it, or use another "
                "--workdir. Nothing was changed") from None
        previous = _read_holder(fd)
        if previous.get("pid"):
            log.warning("work directory %s: taking over the lock of run %s (pid %s on host %s, since %s), %s", self.workdir,
                        previous.get("run_id", "?"), previous["pid"], previous.get("host", "?"), previous.get("started", "?"),
                        _gone(previous))
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder, sort_keys=True) + "\n").encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        """Empty the file (a clean end leaves no holder to take over), then let go of the lock."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _read_holder(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _gone(holder: dict) -> str:
    """Why the lock could be taken although its content names a holder: the words for the warning."""
    if holder.get("host") != socket.gethostname():
        return "which ran on another host and no longer holds the lock"
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return "which is no longer running (killed?); processes it started may have been left running"
    except (OSError, ValueError):
        pass
    return "whose pid exists but no longer holds the lock (a reused pid, or the run was killed)"


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
