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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portaflow.engines.leftovers import this_process
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
    fails at once with who holds the directory; a run that finds the content of a holder on this host that is gone
    takes the lock over with a warning (its processes, if any survive it, no longer hold the directory). A holder
    named on another host is not taken over: on shared filesystems whose locks stay per host, a free flock proves
    nothing about a run there, so the run stops (exit 2) until `portaflow unlock` clears it. The descriptor is not
    inherited by the engines' processes (Python opens it close-on-exec)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.path = workdir / LOCK_FILE
        self.fd: int | None = None
        self.previous: dict = {}
        """The content left by the last holder that did not end cleanly (killed), or {}: what a rerun looks for."""

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
        if previous.get("pid") and previous.get("host") != socket.gethostname():
            # The flock was free here, but on many shared filesystems (Lustre's localflock, NFS without its lock
            # service) locks do not reach across hosts: that run may still be writing from its own host.
            os.close(fd)
            raise WorkdirBusy(
                f"work directory {self.workdir} was taken by run {previous.get('run_id', '?')} (pid {previous['pid']} on host "
                f"{previous.get('host', '?')}, since {previous.get('started', '?')}), which has not released it; from this host "
                f"portaflow cannot tell whether it still runs there (locks may not reach across hosts on this filesystem). "
                f"If it has ended (on {previous.get('host', '?')}: ps -p {previous['pid']}), clear it with `portaflow unlock` "
                "(or `portaflow run ... --unlock`) and run again. Nothing was changed")
        self.previous = previous if previous.get("pid") else {}
        if previous.get("pid"):
            log.warning("work directory %s: taking over the lock of run %s (pid %s on host %s, since %s), %s", self.workdir,
                        previous.get("run_id", "?"), previous["pid"], previous.get("host", "?"), previous.get("started", "?"),
                        _gone(previous))
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": dt.datetime.now().isoformat(timespec="seconds"), **this_process()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder, sort_keys=True) + "\n").encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def unlock(self) -> dict:
        """Clear what a run that did not release the lock left (`--unlock`); return it ({} when there was nothing).

        The check first: no process on this host holds the lock (else WorkdirBusy), and a holder named on this host is
        no longer running (else WorkdirBusy). A holder on another host cannot be checked from here: the person
        running `--unlock` has done that (the refusal says how)."""
        if not self.path.exists():
            return {}
        fd = os.open(self.path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                raise WorkdirBusy(f"work directory {self.workdir} is in use by run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} "
                                  f"on host {holder.get('host', '?')}) right now: not unlocked") from None
            holder = _read_holder(fd)
            if holder.get("pid") and holder.get("host") == socket.gethostname() and _alive(int(holder["pid"])):
                raise WorkdirBusy(f"work directory {self.workdir}: run {holder.get('run_id', '?')} (pid {holder['pid']}) still runs on "
                                  "this host: stop it first; not unlocked")
            os.ftruncate(fd, 0)
            os.fsync(fd)
            return holder if holder.get("pid") else {}
        finally:
            os.close(fd)

    def holder(self) -> dict | None:
        """Who holds the lock now (its content), or None when no run holds it. Asks without taking it for long: a shared
        lock, let go at once."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (another user's)
    return True


def _gone(holder: dict) -> str:
    """Why the lock could be taken although its content names a holder on this host: the words for the warning.
    (A holder on another host is never taken over: `WorkdirLock.acquire` refuses it.)"""
    try:
        running = _alive(int(holder["pid"]))
    except (TypeError, ValueError):
        running = True  # an unreadable pid: say only what is sure
    if not running:
        return "which is no longer running (killed?); processes it started may have been left running"
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

    def write(self, task: Task, signature: Signature | str, inputs: Mapping[str, str] | None = None, run_id: str | None = None) -> dict[str, str]:
        """Record a finished task: its signature (with its parts, when known), each output's digest, `inputs`: the
        digests its producers recorded for the inputs it read (`produced_inputs`), and the run that ran it (so that
        the manifest of a run killed with -9 can be corrected from the records: `driver.settle_killed_run`).
        Returns path -> sha256."""
        digests = {}
        outputs = {}
        for out in task.outputs.values():
            full = self.workdir / out.path
            digests[out.path] = sha256_path(full)
            outputs[out.path] = {"sha256": digests[out.path], "stat": stat_key(full)}
        self.directory.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {"signature": signature.digest if isinstance(signature, Signature) else signature, "outputs": outputs}
        if isinstance(signature, Signature):
            record["parts"] = signature.parts
        if inputs:
            record["inputs"] = dict(inputs)
        if run_id:
            record["run"] = run_id
        self._write_durably(self._path(task.id), json.dumps(record, sort_keys=True))
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


@dataclass(frozen=True)
class Signature:
    """A task's signature and the digest of each part it is made of (so that a rerun can say which part changed)."""

    digest: str
    parts: dict[str, str]
    """'command', 'env', 'image', and 'input:<path>' for each input (its content, or its producer's signature)."""


def produced_inputs(plan: Plan, store: StateStore, task: Task) -> dict[str, str]:
    """The sha256 each input a task reads from another task had when its producer recorded it.

    Why: a signature counts the producer's signature, not its output's content, so that what is stale is known before
    anything runs. A producer that reran alone (`--force A --until A`) may have written different content under the
    same signature; the task that read the old content must then rerun, and it does when these digests differ."""
    producers = {p: t.id for t in plan.tasks for p in t.output_paths()}
    out = {}
    for path in task.input_paths():
        if path in producers:
            record = store.read(producers[path]) or {}
            digest = record.get("outputs", {}).get(path, {}).get("sha256")
            if digest:
                out[path] = digest
    return out


def signature_details(plan: Plan, workdir: Path, extra: Mapping[str, Mapping[str, Any]]) -> dict[str, Signature]:
    """Every task's signature with its parts, in plan order. `extra` maps task id -> what else counts besides the
    command: {"image": ..., "env": <the site's environment>}.

    The digest is computed as it always was (existing records stay valid); the parts are recorded beside it."""
    external_digest: dict[str, str] = {}
    out: dict[str, Signature] = {}
    producers = {p: t.id for t in plan.tasks for p in t.output_paths()}
    for task in plan.tasks:
        more = dict(extra.get(task.id, {}))
        inputs: dict[str, str] = {}
        for path in task.input_paths():
            if path in producers:
                inputs[path] = out[producers[path]].digest
            else:
                if path not in external_digest:
                    full = workdir / path
                    external_digest[path] = sha256_path(full) if full.exists() else "missing"
                inputs[path] = external_digest[path]
        whole = {"command": task.command, "env": task.env, "extra": json.dumps(more, sort_keys=True) if more else "", "inputs": inputs}
        parts = {"command": _digest(task.command), "env": _digest({"step": task.env, "site": more.get("env")}),
                 "image": _digest(more.get("image"))}
        parts.update({f"input:{path}": digest for path, digest in inputs.items()})
        out[task.id] = Signature(_digest(whole), parts)
    return out


def signatures(plan: Plan, workdir: Path, extra: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Every task's signature digest, in plan order (see `signature_details`)."""
    return {task_id: sig.digest for task_id, sig in signature_details(plan, workdir, extra).items()}


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


PART_WORDS = {"command": "command", "env": "environment", "image": "container image"}


def staleness(plan: Plan, store: StateStore, sigs: Mapping[str, Signature | str], force: set[str] | frozenset[str] = frozenset(),
              ) -> dict[str, str]:
    """The tasks to run, in plan order, each with why in words: forced, no record, which part of its signature changed,
    an output missing or changed, or upstream tasks that rerun. One function decides and explains, so that what
    `run -n` says is what `run` does."""
    producers = {p: t.id for t in plan.tasks for p in t.output_paths()}
    reasons: dict[str, str] = {}
    for task in plan.tasks:  # plan order is dependency order: a task's producers are decided before it
        rerun_upstream = [d for d in task.depends if d in reasons]
        why = ["forced (--force)"] if task.id in force else []
        record = store.read(task.id)
        sig = sigs[task.id]
        if record is None:
            why.append("no record of an earlier run")
        else:
            if record.get("signature") != (sig.digest if isinstance(sig, Signature) else sig):
                quiet = {f"input:{p}" for p in task.input_paths() if producers.get(p) in rerun_upstream}
                changed = _changed_parts(record, sig, quiet)
                if changed or not rerun_upstream:
                    why.append(changed or "signature changed")
            why += _outputs_damaged(store.workdir, record)
            if not rerun_upstream:
                why += [f"input {path} was rewritten after this task read it" for path, digest in produced_inputs(plan, store, task).items()
                        if record.get("inputs", {}).get(path, digest) != digest]
        if rerun_upstream:
            why.append("upstream task(s) rerun: " + ", ".join(plan.by_id[d].display for d in rerun_upstream))
        if why:
            reasons[task.id] = "; ".join(why)
    return reasons


def _changed_parts(record: dict, sig: Signature | str, quiet: set[str]) -> str:
    """Which parts of a signature changed, in words; `quiet`: inputs whose producers rerun (said as upstream)."""
    recorded = record.get("parts")
    if not isinstance(sig, Signature) or not isinstance(recorded, dict):
        return "signature changed (its command, inputs, image or environment; the record does not say which)"
    changed = []
    for part, digest in sig.parts.items():
        if recorded.get(part) == digest or part in quiet:
            continue
        if part.startswith("input:"):
            changed.append(f"input {part[len('input:'):]} {'is new' if part not in recorded else 'changed'}")
        else:
            changed.append(PART_WORDS.get(part, part))
    changed += [f"input {part[len('input:'):]} removed" for part in recorded if part.startswith("input:") and part not in sig.parts]
    if not changed:
        return "" if quiet else "signature changed: parameters or the workflow's wiring"
    return "signature changed: " + ", ".join(changed)


def _outputs_damaged(workdir: Path, record: dict) -> list[str]:
    why = []
    for path, info in record.get("outputs", {}).items():
        full = workdir / path
        if not full.exists() and not full.is_symlink():
            why.append(f"output {path} is missing")
        elif stat_key(full) != info.get("stat"):
            why.append(f"output {path} was changed after it was recorded")
    return why


def stale_tasks(plan: Plan, store: StateStore, sigs: Mapping[str, Signature | str], force: set[str] | frozenset[str] = frozenset()) -> list[Task]:
    """Tasks to run, in plan order: forced, changed, incomplete or edited ones, and everything downstream."""
    chosen = staleness(plan, store, sigs, force)
    return [t for t in plan.tasks if t.id in chosen]
