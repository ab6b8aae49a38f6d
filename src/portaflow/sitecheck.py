"""`portaflow site check`: does a site profile hold on the site? One tiny probe job per partition, submitted
through the site's scheduler adapter exactly as a run's jobs are, that reports back across the network.

Why a probe and not only static checks: the mistakes that hang a real run until its walltime are the ones no
file shows. A driver address the compute nodes cannot route to (an interface on the login node's public network,
loopback), a module that does not load, a container runtime missing on the nodes, GPUs promised but not visible:
each shows up here in seconds, per partition, with what to change.

What a probe does, in the job (bash only, no Python needed on the node):
1. the site's and the partition's `environment.modules` and `worker_init` lines, and `environment.env` (the set-up
   every step gets), counting commands that fail;
2. looks for the container runtime (`container.runtime`/`executable`) and, when an image is named, runs the rest
   inside it, as a step would run;
3. notes its host, the scheduler's node name and the GPUs it sees (`CUDA_VISIBLE_DEVICES`, `nvidia-smi -L`);
4. connects to the driver's address (`addresses.choose_address`, the rule Parsl's interchange follows) on a
   TCP listener this check opens on that one address, and sends a line with a token; a failure is recorded with
   the shell's reason (`Network is unreachable`, `Connection refused`, or no answer within 10 s);
5. writes what it found to a file in the check's directory (the filesystem jobs share with the driver).
"""

from __future__ import annotations

import logging
import re
import secrets
import shlex
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from portaflow.addresses import AddressError, choose_address, interface_address, interface_of
from portaflow.commands import CommandError
from portaflow.containers import container_call, wrap
from portaflow.errors import InputError
from portaflow.plan.model import TaskResources
from portaflow.schedulers import adapter_for
from portaflow.schedulers.base import PASSED, UNCHECKED, WRONG, ProbeJob, Scheduler, SiteFinding
from portaflow.schedulers.context import init_lines, module_lines
from portaflow.spec.loading import LoadedSite
from portaflow.spec.variables import UnsetVariable, expand_here, shell_word

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
"""How long a probe tries to connect to the driver: a dropped (firewalled) address answers nothing at all."""
GRACE_S = 5.0
"""How long after the scheduler stops listing a probe its result file may still appear (shared filesystems lag)."""
POLL_S = 3.0
"""Seconds between queries of the probes' states (one query for all of them)."""
ALIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"})
"""Scheduler states of a probe that may still report (SLURM's names; other adapters answer in these words too)."""
REPORT_WORD = "portaflow-check"


@dataclass
class PartitionReport:
    """What the probe of one partition found; `problems` empty means this partition is as the profile says."""

    partition: str
    job: str | None = None
    queue_wait_s: float | None = None
    host: str | None = None
    node: str | None = None
    setup: str | None = None
    container: str | None = None
    reachable: bool | None = None
    reach: str = ""
    gpus_expected: int = 0
    gpus_seen: str | None = None
    directories: str | None = None
    state: str | None = None
    output: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class CheckReport:
    """The whole check: the driver's address (and the interface it is on), the listener, one report per partition."""

    site: str
    address: str | None
    interface: str | None
    chosen_by: str
    listener: str | None
    address_problem: str | None
    partitions: list[PartitionReport]
    elapsed_s: float
    timeout_s: float
    timed_out: bool
    directory: str
    findings: list[SiteFinding] = field(default_factory=list)
    """The profile compared with the scheduler's own answers (`Scheduler.compare_profile`), before any probe."""
    probed: bool = True

    @property
    def ok(self) -> bool:
        """Nothing wrong: no comparison wrong, no probe problem, no refused address ("could not check" is not wrong)."""
        return (self.address_problem is None and all(p.ok for p in self.partitions)
                and not any(f.verdict == WRONG for f in self.findings))

    def count(self, verdict: str) -> int:
        return sum(1 for f in self.findings if f.verdict == verdict)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        for finding, record in zip(self.findings, out["findings"], strict=True):
            record["text"] = finding.text
        for part, record in zip(self.partitions, out["partitions"], strict=True):
            record["ok"] = part.ok
        return out


class Listener:
    """A TCP listener on exactly one address (never every address: a check that listened on 0.0.0.0 would pass where
    a run's interchange, bound to the chosen address, is unreachable), in a thread, recording each probe's report."""

    def __init__(self, address: str, port_range: tuple[int, int] | None, token: str):
        self.token = token
        self.reports: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = _bind(address, port_range)
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="site-check-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\n" not in data and len(data) < 4096:
                        chunk = conn.recv(1024)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    continue
            words = data.decode(errors="replace").split()
            if len(words) >= 3 and words[0] == REPORT_WORD and words[1] == self.token:
                with self._lock:
                    self.reports[words[2]] = {"peer": peer[0], "host": words[3] if len(words) > 3 else "", "at": time.time()}
                log.info("site check: report from the probe of %s (from %s)", words[2], peer[0])

    def report(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self.reports.get(key)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


def _bind(address: str, port_range: tuple[int, int] | None) -> socket.socket:
    """A socket bound to `address` on a free port (of the site's `network.port_range`, if it has one)."""
    ports = range(port_range[0], port_range[1] + 1) if port_range else [0]
    last: OSError | None = None
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((address, port))
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    where = f"any port of network.port_range {port_range[0]}-{port_range[1]}" if port_range else "a free port"
    raise OSError(f"cannot listen on {address} ({where}): {last.strerror if last else 'no port'}")


def file_key(partition: str) -> str:
    """A partition's name as a file name and a report word (no spaces or slashes)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", partition)


def probe_request(loaded: LoadedSite, partition: str, timeout_s: float) -> TaskResources:
    """The smallest job the partition takes: its least cores and memory (at least 1 core, 256 MiB), one GPU where it
    has GPUs (its default model), and a walltime that covers the check (at most the partition's limit)."""
    part = loaded.site.partitions[partition]
    walltime = max(60, int(timeout_s) + 60)
    if isinstance(part.max_walltime, int):
        walltime = min(walltime, part.max_walltime)
    return TaskResources(cores=max(1, part.min_cores), memory_mib=max(256, part.min_memory), walltime_s=walltime,
                         gpus=1 if part.gpus_per_node else 0, gpu_model=part.default_gpu_model if part.gpus_per_node else None,
                         nodes=part.min_nodes)


def probe_script(loaded: LoadedSite, partition: str, directory: Path, address: str | None, port: int | None, token: str,
                 container: str | None, gpus: int, work_dir: str | None = None) -> str:
    """The bash probe of one partition (the module docstring says what it does). `work_dir`: `storage.work_dir` as the
    driver expands it; `storage.scratch_dir` is expanded by the job's shell, as a step's is."""
    site = loaded.site
    q = shlex.quote
    key = file_key(partition)
    result = directory / f"{key}.result"
    partial = directory / f"{key}.partial"
    setup = [*module_lines(site, partition), *init_lines(site, partition)]
    setup += [f"export {name}={shell_word(value)}" for name, value in site.environment.env.items()]
    inner = [
        f"pf_out={q(str(partial))}",
        "{",
        '  echo "host=$(hostname)"',
        '  echo "node=${SLURMD_NODENAME:-}"',
        '  echo "in_container=${PORTAFLOW_CHECK_IN_CONTAINER:-no}"',
        '  echo "cuda_visible_devices=${CUDA_VISIBLE_DEVICES:-}"',
        "  echo \"nvidia_smi=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)\"",
        '} >>"$pf_out"',
    ]
    if address and port:
        line = f"{REPORT_WORD} {token} {key}"
        inner += [
            f"pf_err=$(timeout {CONNECT_TIMEOUT_S} bash -c 'exec 3<>\"/dev/tcp/$1/$2\" && printf \"%s %s\\n\" \"$3\" \"$(hostname)\" >&3' "
            f"pf-connect {q(address)} {port} {q(line)} 2>&1)",
            "pf_rc=$?",
            'echo "connect_rc=$pf_rc" >>"$pf_out"',
            'echo "connect_error=$(printf %s "$pf_err" | tr "\\n" " ")" >>"$pf_out"',
        ]
    inner_text = "\n".join(inner)
    call = container_call(site, container) if container else None
    runtime = (site.container.executable or site.container.runtime) if site.container.runtime != "none" else ""
    lines = [
        "#!/bin/bash",
        f"# portaflow site check: the probe of partition {partition} on site {site.name} (written by `portaflow site check`).",
        "pf_started=$(date +%s.%N)",
        f"rm -f {q(str(partial))}",
        "pf_setup_failed=0",
        "trap 'pf_setup_failed=$((pf_setup_failed + 1))' ERR",
        "{",
        ":",
        *setup,
        f"}} >{q(str(directory / f'{key}.setup.log'))} 2>&1",
        "trap - ERR",
        f"pf_runtime={q(runtime)}",
        'if [ -z "$pf_runtime" ]; then pf_container="none"',
        'elif command -v "$pf_runtime" >/dev/null 2>&1; then pf_container="present"',
        'else pf_container="missing"; fi',
        # each storage directory of the profile: created if missing and a file written and removed there, on the node
        'pf_dir() { if mkdir -p -- "$2" 2>/dev/null && : >"$2/.portaflow-check.$$" 2>/dev/null; then rm -f -- "$2/.portaflow-check.$$"; '
        f'echo "dir_$1=yes $2"; else echo "dir_$1=no $2"; fi >>{q(str(partial))}; }}',
    ]
    if site.storage.scratch_dir:
        lines.append(f"pf_dir scratch_dir {shell_word(site.storage.scratch_dir)}")
    if work_dir:
        lines.append(f"pf_dir work_dir {q(work_dir)}")
    if call is not None:
        command = wrap(inner_text, call, site, str(directory), gpus, ["PORTAFLOW_CHECK_IN_CONTAINER"])
        lines += [
            'if [ "$pf_container" = present ]; then',
            "  export PORTAFLOW_CHECK_IN_CONTAINER=yes",
            f"  {command}",
            "  pf_inner=$?",
            "else",
            f"  bash -c {q(inner_text)}",
            "  pf_inner=$?",
            "fi",
        ]
    else:
        lines += [f"bash -c {q(inner_text)}", "pf_inner=$?"]
    lines += [
        "{",
        '  echo "started=$pf_started"',
        f'  echo "setup_lines={len(setup)}"',
        '  echo "setup_failed=$pf_setup_failed"',
        '  echo "container=$pf_container"',
        '  echo "runtime=$pf_runtime"',
        f'  echo "image={call.image if call else ""}"',
        '  echo "inner_rc=$pf_inner"',
        f"}} >>{q(str(partial))}",
        f"mv {q(str(partial))} {q(str(result))}",
    ]
    return "\n".join(lines) + "\n"


def read_result(path: Path) -> dict[str, str]:
    """A probe's `key=value` lines."""
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip()] = value.strip()
    return values


def judge(report: PartitionReport, values: dict[str, str], job: ProbeJob, address: str | None, port: int | None,
          interface: str | None, listener: Listener | None) -> None:
    """Fill in one partition's report from its probe's result and the listener; a problem for each thing wrong."""
    report.host, report.node = values.get("host") or None, values.get("node") or None
    try:
        report.queue_wait_s = round(max(0.0, float(values["started"]) - job.submitted_at), 1)
    except (KeyError, ValueError):
        pass
    lines, failed = int(values.get("setup_lines", "0") or 0), int(values.get("setup_failed", "0") or 0)
    report.setup = f"{lines} line(s) ran" + (f", {failed} command(s) failed" if failed else "") if lines else "none to run"
    if failed:
        report.problems.append(f"environment set-up: {failed} command(s) of environment.modules/worker_init failed "
                               f"(see {report.output and Path(report.output).with_suffix('.setup.log')})")
    runtime = values.get("container", "none")
    image = values.get("image")
    if runtime == "none":
        report.container = "none (steps run on the host)"
    elif runtime == "missing":
        report.container = "runtime missing on the node"
        report.problems.append(f"container.runtime: {values.get('runtime') or 'the runtime'} is not on the node's PATH (install it there, "
                               "or set container.executable to its path on the nodes)")
    else:
        inside = values.get("in_container") == "yes"
        report.container = f"present, ran in {image}" if image and inside else ("present" if not image else f"present; {image} did not start")
        if image and not inside:
            report.problems.append(f"container: image {image} did not start on the node (exit {values.get('inner_rc')}; see {report.output})")
    visible = [d for d in values.get("cuda_visible_devices", "").split(",") if d]
    smi = int(values.get("nvidia_smi", "0") or 0)
    report.gpus_seen = (f"{len(visible)} (CUDA_VISIBLE_DEVICES={','.join(visible)})" if visible else "0") + (f", nvidia-smi {smi}" if smi else "")
    if report.gpus_expected and not (visible or smi):
        report.problems.append(f"GPUs: partitions.{report.partition}.gpus_per_node is {report.gpus_expected}, and a job that asked for one "
                               "sees none (no CUDA_VISIBLE_DEVICES, no GPU in nvidia-smi -L): check slurm.gpu_syntax and the nodes' GPUs")
    judge_directories(report, values)
    if not (address and port):
        report.reach = "not checked (no address to listen on)"
        return
    got = listener.report(file_key(report.partition)) if listener else None
    if got is None and values.get("connect_rc") == "0" and listener is not None:
        time.sleep(1)  # the probe connected and sent its line; the listener's thread may not have read it yet
        got = listener.report(file_key(report.partition))
    where = f"{address}:{port}" + (f" ({interface})" if interface else "")
    if got is not None:
        report.reachable, report.reach = True, f"{where} reached from {values.get('host') or got['peer']}"
        return
    report.reachable = False
    rc, error = values.get("connect_rc"), values.get("connect_error", "").strip()
    why = f"no answer within {CONNECT_TIMEOUT_S} s" if rc == "124" else (_last_reason(error) or f"exit {rc}")
    report.reach = f"{where} unreachable from {values.get('host') or 'the node'}: {why}"
    report.problems.append(f"network: the driver's address {where} is unreachable from the node ({why}); a run's workers "
                           "would wait there until the walltime: set network.address (or network.interface) to the address the "
                           "compute nodes reach this host at")


def judge_directories(report: PartitionReport, values: dict[str, str]) -> None:
    """The probe's `dir_<field>=yes|no PATH` lines: each storage directory writable on the node, else a problem at its key."""
    seen = []
    for name in ("scratch_dir", "work_dir"):
        verdict, _, path = values.get(f"dir_{name}", "").partition(" ")
        if not verdict:
            continue
        seen.append(f"{name} {path}: {'writable' if verdict == 'yes' else 'NOT writable'}")
        if verdict != "yes":
            report.problems.append(f"storage.{name}: {path} cannot be created or written on {values.get('host') or 'the node'} "
                                   "(profile says the site's jobs write there; set storage." + name + " to a directory they can write)")
    report.directories = "; ".join(seen) or None


def _last_reason(error: str) -> str:
    """bash's connect error, without its prefix ('bash: connect: Network is unreachable' -> 'Network is unreachable')."""
    parts = [p.strip() for p in re.split(r"bash: ", error) if p.strip()]
    return parts[-1].split(": ")[-1] if parts else ""


def driver_address(loaded: LoadedSite, adapter: Scheduler, partitions: list[str]) -> tuple[str | None, str, str | None]:
    """(address, how it was chosen, the problem with it): the address a run's workers would be told, by the run's
    own rule. A profile's address the rule refuses is still probed where it can be listened on, so the report shows
    what the nodes make of it."""
    network = loaded.site.network
    try:
        choice = choose_address(address=network.address, interface=network.interface, peers=adapter.partition_hosts(partitions),
                                what="jobs")
        return choice.address, choice.chosen_by, None
    except AddressError as exc:
        fallback = network.address
        if not fallback and network.interface:
            try:
                fallback = interface_address(network.interface)
            except AddressError:
                fallback = None
        return fallback, "the site profile's network section (refused by the address rule)", str(exc)


def check_site(loaded: LoadedSite, directory: Path, partitions: list[str] | None = None, container: str | None = None,
               timeout_s: float = 120.0, progress: Any = None, probe: bool = True) -> CheckReport:
    """Compare the profile with the scheduler's answers (the adapter's `compare_profile`: nothing submitted), then,
    unless `probe` is False, probe each partition (all, or those named); return the report. Raises InputError (exit 2,
    nothing submitted) for an unknown partition or container. A scheduler whose adapter cannot submit probes gets a
    "could not check" finding for them (the comparisons still run)."""
    say = progress or (lambda text: None)
    site = loaded.site
    adapter = adapter_for(loaded)
    adapter.check()
    adapter.check_user_values()
    names = list(partitions or site.partitions)
    unknown = [p for p in names if p not in site.partitions]
    if unknown:
        raise InputError(f"--partition: site {site.name} has no partition {', '.join(map(repr, unknown))} "
                         f"(its partitions: {', '.join(site.partitions)})")
    if container is None and site.container.runtime != "none" and site.container.images:
        container = next(iter(site.container.images))
    elif container is not None and site.container.runtime == "none":
        raise InputError(f"--container: site {site.name} runs steps on the host (container.runtime: none)")
    start = time.monotonic()
    findings = adapter.compare_profile(names)
    say(f"site check of {site.name}: {len(findings)} comparison(s) with the scheduler: "
        + ", ".join(f"{sum(1 for f in findings if f.verdict == v)} {v}" for v in (PASSED, WRONG, UNCHECKED)))
    unavailable = adapter.probe_unavailable()
    if not probe or unavailable:
        if probe and unavailable:
            findings.append(SiteFinding("probe jobs (modules, worker_init, container, GPUs, directories, the driver's address)",
                                        UNCHECKED, why=unavailable))
        address, chosen_by, address_problem = driver_address(loaded, adapter, names) if not unavailable else (None, "", None)
        return CheckReport(site.name, address, interface_of(address) if address else None, chosen_by, None, address_problem, [],
                           round(time.monotonic() - start, 1), timeout_s, False, "", findings, probed=False)
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    reports = {p: PartitionReport(p, gpus_expected=site.partitions[p].gpus_per_node) for p in names}
    problems = adapter.connection_problems()
    if problems:
        for report in reports.values():
            report.problems += problems
        return CheckReport(site.name, None, None, "", None, None, list(reports.values()), round(time.monotonic() - start, 1), timeout_s,
                           False, str(directory), findings)
    work_dir = None
    if site.storage.work_dir:
        try:
            work_dir = expand_here(site.storage.work_dir)
        except UnsetVariable as exc:
            findings.append(SiteFinding("storage.work_dir writable", UNCHECKED, "storage.work_dir", site.storage.work_dir,
                                        why=f"it uses ${', $'.join(exc.names)}, not set on this machine"))
    address, chosen_by, address_problem = driver_address(loaded, adapter, names)
    interface = interface_of(address) if address else None
    token = secrets.token_hex(8)
    listener = None
    if address:
        try:
            listener = Listener(address, site.network.port_range, token)
        except OSError as exc:
            address_problem = (address_problem + "; " if address_problem else "") + str(exc)
    port = listener.port if listener else None
    say(f"site check of {site.name}: the driver's address {address or '-'}"
        + (f" on {interface}" if interface else "") + (f" ({chosen_by})" if address else "")
        + (f"; listening on {address}:{port}" if port else "") + f"; probe files in {directory}")
    tag = f"check-{token}"
    jobs: dict[str, ProbeJob] = {}
    try:
        for name in names:
            key = file_key(name)
            report = reports[name]
            script = directory / f"{key}.sh"
            for stale in (f"{key}.result", f"{key}.partial", f"{key}.out", f"{key}.setup.log"):  # an earlier check's
                (directory / stale).unlink(missing_ok=True)
            request = probe_request(loaded, name, timeout_s)
            script.write_text(probe_script(loaded, name, directory, address if listener else None, port, token, container, request.gpus,
                                           work_dir))
            script.chmod(0o755)
            output = directory / f"{key}.out"
            report.output = str(output)
            try:
                job = adapter.submit_probe(name, request, script, output, tag)
            except CommandError as exc:
                reason = (exc.stderr.strip().splitlines() or [exc.reason])[-1]
                report.problems.append(f"submission refused: {reason}")
                continue
            report.job = job.job_id
            jobs[name] = job
            say(f"  {name}: submitted ({job.job_id})")
        timed_out = _wait(adapter, jobs, reports, directory, address, port, interface, listener, start + timeout_s, timeout_s, say)
    finally:
        left = [j.job_id for name, j in jobs.items() if not (directory / f"{file_key(name)}.result").exists()]
        if left:
            adapter.cancel_run(tag, left)
        if listener:
            listener.close()
    return CheckReport(site.name, address, interface, chosen_by, f"{address}:{port}" if port else None, address_problem,
                       list(reports.values()), round(time.monotonic() - start, 1), timeout_s, timed_out, str(directory), findings)


def _wait(adapter: Scheduler, jobs: dict[str, ProbeJob], reports: dict[str, PartitionReport], directory: Path,
          address: str | None, port: int | None, interface: str | None, listener: Listener | None, deadline: float,
          timeout_s: float, say: Any) -> bool:
    """Wait for every probe's result (or its end without one, or the deadline); True when the deadline came first."""
    waiting = dict(jobs)
    ended: dict[str, float] = {}
    next_poll = 0.0
    while waiting:
        for name in list(waiting):
            result = directory / f"{file_key(name)}.result"
            if result.exists():
                judge(reports[name], read_result(result), waiting.pop(name), address, port, interface, listener)
                say(f"  {name}: reported" + ("" if reports[name].ok else f" ({len(reports[name].problems)} problem(s))"))
        now = time.monotonic()
        if not waiting:
            return False
        if now >= deadline:
            break
        if now >= next_poll:
            states = adapter.probe_states(list(waiting.values()))
            for name, job in list(waiting.items()):
                state = states.get(job.job_id)
                if state:
                    reports[name].state = state
                if state and state.split()[0] in ALIVE:
                    ended.pop(name, None)
                    continue
                if now - ended.setdefault(name, now) > GRACE_S:
                    reports[name].problems.append(f"the job ended ({state or 'no longer queued'}) without a report: its environment "
                                                  f"set-up or shell failed; see {reports[name].output}")
                    del waiting[name]
            next_poll = now + POLL_S
        time.sleep(0.5)
    for name, job in waiting.items():
        state = reports[name].state or "state unknown"
        reports[name].problems.append(f"timeout: no report within the check's {timeout_s:g} s (--timeout); job {job.job_id} "
                                      f"was {state} (cancelled)")
    return True


def rows(report: CheckReport) -> list[list[str]]:
    """One row per partition, for the CLI's table: partition, job, queue wait, where, set-up, container, storage
    directories, address, GPUs, verdict."""
    out = []
    for p in report.partitions:
        where = p.host or "-"
        if p.node and p.node != p.host:
            where += f" (node {p.node})"
        wait = f"{p.queue_wait_s:.1f} s" if p.queue_wait_s is not None else (p.state or "-")
        gpus = f"{p.gpus_seen or '-'} of {p.gpus_expected}" if p.gpus_expected else (p.gpus_seen or "-")
        out.append([p.partition, p.job or "not submitted", wait, where, p.setup or "-", p.container or "-", p.directories or "-",
                    p.reach or "-", gpus,
                    "ok" if p.ok else "; ".join(p.problems)])
    return out
