"""A stand-in Kubernetes API server for tests: loopback HTTP, each container a local process.

No Kubernetes API server can run where the tests run, yet the engines' Kubernetes paths (Snakemake's
executor plugin, Parsl's KubernetesProvider, portaflow's own calls) should be exercised end to end:
through the real `kubernetes` Python client, its serialisation and its client-side validation, over
real HTTP. `StandInKube` answers the REST calls those make and "runs" each Pod (bare, or a Job's one
pod) by starting its first container's `command + args` as a local process in a fresh empty directory.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import re
import signal
import string
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from portaflow.schedulers.kubernetes import KUBERNETES_VERSION

Reply = tuple[int, Any]  # (HTTP status, a JSON-able object or, for logs, text)
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> Reply:
    """A v1 Status: the client turns a non-2xx one into ApiException(code), which callers read."""
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "reason": reason, "code": code, "message": message}


SUCCESS: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion from the container's own env; `$$` escapes, unknown names stay."""
    return _VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def _selector(text: str) -> list[tuple[str, str, str | None]]:
    """`a=b,c!=d,e` as (key, operator, value) terms; set-based terms (`in`, `notin`) are refused."""
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"([^=!\s]+)\s*(?:(==|=|!=)\s*([^=!\s]*))?", term)
        if not m:
            raise ValueError(f"unsupported label selector term {term!r} (the stand-in knows k=v, k!=v, k)")
        terms.append((m.group(1), m.group(2) or "exists", m.group(3)))
    return terms


def _matches(labels: dict[str, str], terms: list[tuple[str, str, str | None]]) -> bool:
    return all((labels.get(k) != v) if op == "!=" else (k in labels) if op == "exists" else (labels.get(k) == v)
               for k, op, v in terms)


@dataclass
class _Pod:
    """One pod: its stored object (no status) and the process standing in for its first container."""

    obj: dict[str, Any]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: str = field(default_factory=_now)
    finished: str | None = None
    exit_code: int | None = None
    reason: str | None = None  # set before the end to override Completed/Error (DeadlineExceeded, ...)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    def finish(self, code: int, reason: str | None = None) -> None:
        """Record the exit (signals as 128+N, as the kubelet does) and kill leftovers, as a container's end does."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.exit_code = 128 - code if code < 0 else code
        self.reason = self.reason or reason or ("Completed" if self.exit_code == 0 else "Error")
        self.finished = _now()
        self.done.set()

    def terminate(self, reason: str | None = None) -> None:
        """SIGTERM the process group, SIGKILL after 5 s (the default grace period, shortened); wait for the end."""
        if self.done.is_set() or self.proc is None:
            return
        self.reason = self.reason or reason
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            if self.done.wait(5):
                return

    def to_json(self) -> dict[str, Any]:
        """The Pod with a status the client accepts (ContainerStatus needs image, imageID, name, ready, restartCount)."""
        running = not self.done.is_set()
        state = ({"running": {"startedAt": self.started}} if running else
                 {"terminated": {"exitCode": self.exit_code, "reason": self.reason,
                                 "startedAt": self.started, "finishedAt": self.finished}})
        phase = "Running" if running else "Succeeded" if self.exit_code == 0 else "Failed"
        statuses = [{"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "", "ready": running,
                     "restartCount": 0, "started": running, "state": state}
                    for c in self.obj["spec"].get("containers") or []]
        return {**self.obj, "status": {"phase": phase, "startTime": self.started, "hostIP": "127.0.0.1",
                                       "podIP": "127.0.0.1", "containerStatuses": statuses}}


class StandInKube:
    """A loopback Kubernetes API server whose pods are local processes (tests only, never product code).

    Why: no API server runs here, and mocking the client would skip what matters (the bodies the real
    client sends, its deserialisation and validation of answers). So the real client speaks real HTTP
    to this server, which keeps Secrets, Jobs and Pods in memory and runs the first container of each
    pod as `command + args` (after `$(VAR)` expansion) in a fresh `root/pods/<pod>/workdir` standing in
    for the container's emptyDir working directory. The image is ignored: the process uses the host's
    programs and `base_env` (e.g. PATH with the venv's bin, HOME), plus the container's env (`value`,
    or `valueFrom.secretKeyRef` read from the stored Secrets) and HOSTNAME=<pod name>. Volumes, resources,
    node selection, restarts (backoffLimit) and TTLs are not modelled; activeDeadlineSeconds (pod or Job)
    is. Every Job and Pod body is checked with kubernetes-validate (strict) into `problems`.

    Clients: `kubernetes.config.load_kube_config(config_file=str(kube.kubeconfig))` in-process; a bare
    `load_kube_config()` (Parsl's) reads KUBECONFIG as it was when `kubernetes` was first imported, so
    set it before that import or in a child process's environment. In-cluster config cannot reach this.
    """

    def __init__(self, root: Path, base_env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.base_env = dict(base_env if base_env is not None else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.url = ""
        self.kubeconfig = self.root / "kubeconfig"
        self.received: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.secrets: dict[str, dict[str, Any]] = {}
        self.deleted_secrets: list[str] = []
        self.deleted: list[str] = []
        self.jobs: dict[str, tuple[dict[str, Any], _Pod]] = {}  # name -> (Job object, its pod)
        self.pods: dict[str, _Pod] = {}
        self._all: list[_Pod] = []  # every pod ever started, deleted ones too (for wait_idle and stop)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> StandInKube:
        """Serve on a free loopback port in a daemon thread and write a kubeconfig pointing at it."""
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size) if size else b""
                code, payload = stand_in._handle(self.command, parts.path, parse_qs(parts.query), raw)
                text = isinstance(payload, str)
                data = payload.encode() if text else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.root.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="standin-kube", daemon=True).start()
        self.kubeconfig.write_text(json.dumps({  # JSON is YAML: the client's loader reads it
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "standin", "user": {"token": "standin-token"}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin", "namespace": "default"}}],
        }, indent=2))
        return self

    def stop(self) -> None:
        """Kill every process group still running, then shut the server down."""
        for pod in list(self._all):
            if not pod.done.is_set() and pod.proc is not None:
                try:
                    os.killpg(pod.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pod.done.wait(5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandInKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float) -> None:
        """Wait until no container process runs; TimeoutError naming the pods still running."""
        deadline = time.monotonic() + timeout
        for pod in list(self._all):
            if not pod.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"pods still running after {timeout}s: {[p.name for p in self._all if not p.done.is_set()]}")

    # --- REST ------------------------------------------------------------------------------------
    def _handle(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> Reply:
        """Route one request; nothing raised here may take the server down (a 500 Status instead)."""
        self.calls.append((method, path))
        q = {k: v[-1] for k, v in query.items()}
        try:
            body = json.loads(raw) if raw else {}
            with self._lock:
                return self._route(method, path, q, body)
        except ValueError as exc:
            return _status(400, "BadRequest", str(exc))
        except Exception as exc:  # noqa: BLE001 - a stand-in bug must show as an answer, not a hang
            return _status(500, "InternalError", f"stand-in: {type(exc).__name__}: {exc}")

    def _route(self, method: str, path: str, q: dict[str, str], body: dict[str, Any]) -> Reply:
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/(secrets|pods)(?:/([^/]+)(/log|/status)?)?"
                         r"|/apis/batch/v1/namespaces/([^/]+)/(jobs)(?:/([^/]+)(/status)?)?", path)
        if not m:
            return _status(404, "NotFound", f"the stand-in serves no {method} {path}")
        ns, kind, name, sub = m.group(1, 2, 3, 4) if m.group(1) else m.group(5, 6, 7, 8)
        terms = _selector(q.get("labelSelector", ""))
        if method == "POST" and name is None:
            return self._create(kind, ns, body)
        if kind == "secrets" and name and method in ("GET", "DELETE"):
            if (secret := self.secrets.get(name)) is None or secret["metadata"]["namespace"] != ns:
                return _status(404, "NotFound", f'secrets "{name}" not found')
            if method == "DELETE":
                del self.secrets[name]
                self.deleted_secrets.append(name)
                return 200, SUCCESS
            return 200, secret
        if kind == "jobs" and name is None and method in ("GET", "DELETE"):
            names = [n for n, (job, _) in self.jobs.items()
                     if job["metadata"]["namespace"] == ns and _matches(job["metadata"].get("labels") or {}, terms)]
            items = [self._job_json(n) for n in names]
            if method == "DELETE":  # deletecollection: each job as if deleted by name (its pod too, unless orphaned)
                for n in names:
                    _, pod = self.jobs.pop(n)
                    self.deleted.append(n)
                    if (body.get("propagationPolicy") or q.get("propagationPolicy")) != "Orphan":
                        self.pods.pop(pod.name, None)
                        pod.terminate()
            return 200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items}
        if kind == "jobs" and name and method in ("GET", "DELETE"):
            if name not in self.jobs or self.jobs[name][0]["metadata"]["namespace"] != ns:
                return _status(404, "NotFound", f'jobs.batch "{name}" not found')
            if method == "GET":
                return 200, self._job_json(name)
            _, pod = self.jobs.pop(name)
            self.deleted.append(name)
            if (body.get("propagationPolicy") or q.get("propagationPolicy")) != "Orphan":
                self.pods.pop(pod.name, None)
                pod.terminate()
            return 200, SUCCESS
        if kind == "pods" and name is None and method in ("GET", "DELETE"):
            found = [p for p in self.pods.values()
                     if p.obj["metadata"]["namespace"] == ns and _matches(p.obj["metadata"].get("labels") or {}, terms)]
            if method == "DELETE":
                for pod in found:
                    self._delete_pod(pod)
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [p.to_json() for p in found]}
        if kind == "pods" and name and (method == "GET" or (method == "DELETE" and sub is None)):
            if (pod := self.pods.get(name)) is None or pod.obj["metadata"]["namespace"] != ns:
                return _status(404, "NotFound", f'pods "{name}" not found')
            if method == "DELETE":
                self._delete_pod(pod)
            return 200, pod.log.read_text(errors="replace") if sub == "/log" else pod.to_json()
        return _status(404, "NotFound", f"the stand-in serves no {method} {path}")

    def _create(self, kind: str, ns: str, body: dict[str, Any]) -> Reply:
        """Store an object as the server would (kind and apiVersion from the URL when absent) and start pods."""
        obj = copy.deepcopy(body)
        obj.setdefault("apiVersion", "batch/v1" if kind == "jobs" else "v1")
        obj.setdefault("kind", {"jobs": "Job", "pods": "Pod", "secrets": "Secret"}[kind])
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase, k=5))
        self.received.append(copy.deepcopy(obj))
        if kind != "secrets":
            self.problems += _schema_problems(obj)
        name = meta.get("name")
        if not name:
            return _status(422, "Invalid", f"{obj['kind']}: metadata.name: Required value")
        if name in {"jobs": self.jobs, "pods": self.pods, "secrets": self.secrets}[kind]:
            return _status(409, "AlreadyExists", f'{kind} "{name}" already exists')
        meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now())
        if kind == "secrets":
            data = obj.setdefault("data", {}) or {}
            data.update({k: base64.b64encode(v.encode()).decode() for k, v in (obj.pop("stringData", None) or {}).items()})
            obj["data"] = data
            self.secrets[name] = obj
            return 201, obj
        if kind == "pods":
            self.pods[name] = self._start(obj)
            return 201, self.pods[name].to_json()
        template = obj["spec"]["template"]
        labels = {**((template.get("metadata") or {}).get("labels") or {}), "job-name": name,
                  "batch.kubernetes.io/job-name": name, "controller-uid": meta["uid"]}
        pod_name = f"{name}-{''.join(random.choices(string.ascii_lowercase, k=5))}"
        pod_spec = copy.deepcopy(template["spec"])
        if obj["spec"].get("activeDeadlineSeconds") is not None:  # the Job's deadline bounds its pod here
            pod_spec.setdefault("activeDeadlineSeconds", obj["spec"]["activeDeadlineSeconds"])
        pod = self._start({"apiVersion": "v1", "kind": "Pod", "spec": pod_spec, "metadata": {
            "name": pod_name, "namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": _now(), "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": meta["uid"], "controller": True}]}})
        self.pods[pod_name] = pod
        self.jobs[name] = (obj, pod)
        return 201, self._job_json(name)

    def _job_json(self, name: str) -> dict[str, Any]:
        job, pod = self.jobs[name]
        status: dict[str, Any] = {"startTime": pod.started}
        if not pod.done.is_set():
            status["active"] = 1
        elif pod.exit_code == 0:
            status.update(succeeded=1, completionTime=pod.finished)
        else:
            status["failed"] = 1
        return {**job, "status": status}

    def _delete_pod(self, pod: _Pod) -> None:
        self.pods.pop(pod.name, None)
        self.deleted.append(pod.name)
        pod.terminate()

    # --- containers ------------------------------------------------------------------------------
    def _start(self, obj: dict[str, Any]) -> _Pod:
        """Start the pod's first container as a process group; config errors end it at once with exit 1."""
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        workdir = self.root / "pods" / meta["name"] / "workdir"
        workdir.mkdir(parents=True, exist_ok=True)
        pod = _Pod(obj, workdir.parent / "log")
        self._all.append(pod)
        container = (obj["spec"].get("containers") or [{}])[0]
        own: dict[str, str] = {}
        with pod.log.open("wb") as log:
            try:
                for item in container.get("env") or []:
                    own[item["name"]] = self._env_value(item, meta["namespace"], own)
                argv = [_expand(a, own) for a in (container.get("command") or []) + (container.get("args") or [])]
                if not argv:
                    raise LookupError("no command or args: the stand-in cannot run an image's entrypoint")
            except LookupError as exc:
                log.write(f"CreateContainerConfigError: {exc.args[0]}\n".encode())
                pod.finish(1, "CreateContainerConfigError")
                return pod
            try:
                pod.proc = subprocess.Popen(argv, cwd=workdir, env={**self.base_env, "HOSTNAME": meta["name"], **own},
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            except OSError as exc:
                log.write(f"StartError: {exc}\n".encode())
                pod.finish(128, "StartError")
                return pod
        proc = pod.proc
        threading.Thread(target=lambda: pod.finish(proc.wait()), daemon=True).start()
        if (deadline := obj["spec"].get("activeDeadlineSeconds")) is not None:
            timer = threading.Timer(float(deadline), pod.terminate, ("DeadlineExceeded",))
            timer.daemon = True
            timer.start()
        return pod

    def _env_value(self, item: dict[str, Any], namespace: str, own: dict[str, str]) -> str:
        """An env entry's value: `value` (with `$(VAR)` from earlier entries) or a Secret's key; LookupError if missing."""
        if "value" in item or "valueFrom" not in item:
            return _expand(item.get("value") or "", own)
        ref = item["valueFrom"].get("secretKeyRef")
        if ref is None:
            raise LookupError(f"env {item['name']}: the stand-in resolves only value and valueFrom.secretKeyRef")
        secret = self.secrets.get(ref["name"])
        if secret is None or secret["metadata"]["namespace"] != namespace:
            raise LookupError(f'secret "{ref["name"]}" not found')
        if ref["key"] not in (secret.get("data") or {}):
            raise LookupError(f"couldn't find key {ref['key']} in Secret {namespace}/{ref['name']}")
        return base64.b64decode(secret["data"][ref["key"]]).decode()


def _schema_problems(body: dict[str, Any]) -> list[str]:
    """kubernetes-validate, strict, as portaflow's schema_problems calls it; any failure becomes a problem line."""
    import kubernetes_validate

    where = f"{body.get('kind')} {(body.get('metadata') or {}).get('name')}"
    try:
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: schema {KUBERNETES_VERSION} (strict): {'.'.join(str(p) for p in exc.path)}: {exc.message}"]
    except Exception as exc:  # noqa: BLE001 - e.g. SchemaNotFoundError: still a problem, never a crash
        return [f"{where}: cannot validate: {type(exc).__name__}: {exc}"]
    return []
