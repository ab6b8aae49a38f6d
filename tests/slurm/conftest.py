"""Fixtures for tests that need the real local SLURM cluster (started with `tests/slurm/cluster.sh up`).

Why a fixture that skips: most developer machines have no SLURM, and the suite must pass there. Why
PORTAFLOW_CI=1 turns the skip into a failure: in CI the cluster is brought up on purpose, so a cluster that is
not answering is a broken test bed, and silently skipping every SLURM test would hide exactly that.

Every test collected under tests/slurm/ is marked `slurm` (select or deselect with `-m slurm`).

Under pytest-xdist these tests run side by side, in several processes, on the one shared cluster. A test that
changes the cluster for everyone (`cluster.sh accounting off`) is marked `slurm_exclusive`: it waits until no
other SLURM test runs, and none starts until it ends (a readers-writer lock on a file all workers share). A test
that takes a compute node down is marked `slurm_nodes_exclusive`: the same, among the tests on the compute nodes.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testlib import WORKFLOWS, run_portaflow, unavailable

HERE = Path(__file__).resolve().parent
CLUSTER_SH = HERE / "cluster.sh"
CLUSTER_NAME = "portaflow"
DEFAULT_ACCOUNT = "portaflow-test"

# Job states after which a job no longer changes (squeue/scontrol names, as sacct prints them too).
FINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
})


def _run(cmd: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client command; never raise on a non-zero exit (callers look at the message)."""
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def parse_scontrol_record(text: str) -> dict[str, str]:
    """Parse one `scontrol show ... -o` line into Key -> value.

    Values may contain '=' (TRES=cpu=1,mem=500M) but keys are never preceded by anything but a space,
    so split at ' Key=' boundaries. Values with spaces (a Command path with spaces) would be cut; none here.
    """
    fields: dict[str, str] = {}
    for match in re.finditer(r"(?:^|\s)([A-Za-z][\w/:.]*)=(\S*)", text.strip()):
        fields.setdefault(match.group(1), match.group(2))
    return fields


@dataclass
class SlurmCluster:
    """The running local cluster: its names and thin wrappers over the real SLURM commands."""

    node: str
    partitions: tuple[str, ...]
    accounting: bool
    accounting_detail: str
    submitted: list[str] = field(default_factory=list)
    final_states: frozenset[str] = FINAL_STATES

    def sbatch(self, *args: str, wrap: str = "true", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Submit `--parsable ARGS --wrap WRAP`; returns the completed sbatch (rc, stdout = job id, stderr)."""
        proc = subprocess.run(
            ["sbatch", "--parsable", *args, "--wrap", wrap],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, cwd=cwd,
        )
        if proc.returncode == 0:
            self.submitted.append(self.job_id(proc))
        return proc

    @staticmethod
    def job_id(proc: subprocess.CompletedProcess[str]) -> str:
        """The job id from a successful `sbatch --parsable` ("ID" or "ID;cluster")."""
        assert proc.returncode == 0, f"sbatch failed: {proc.stderr.strip()}"
        return proc.stdout.strip().split(";")[0]

    def submit(self, *args: str, wrap: str = "true", cwd: Path | None = None) -> str:
        """Submit a job that must be accepted; return its id."""
        return self.job_id(self.sbatch(*args, wrap=wrap, cwd=cwd))

    def show(self, entity: str, name: str) -> dict[str, str]:
        """`scontrol show ENTITY NAME -o` (job, node, partition) as a dict."""
        proc = _run(["scontrol", "show", entity, name, "-o"])
        assert proc.returncode == 0, f"scontrol show {entity} {name}: {proc.stderr.strip()}"
        return parse_scontrol_record(proc.stdout)

    def show_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o ID` as a dict (kept MinJobAge=300 s after the job ends)."""
        return self.show("job", job_id)

    def wait_for_state(self, job_id: str, states: set[str] | frozenset[str], timeout: float) -> dict[str, str]:
        """Poll scontrol until the job's JobState is one of `states`; fail with the last record otherwise."""
        deadline = time.monotonic() + timeout
        record = self.show_job(job_id)
        while record.get("JobState") not in states:
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} still {record.get('JobState')} (Reason={record.get('Reason')}) "
                            f"after {timeout:.0f} s, wanted one of {sorted(states)}")
            time.sleep(0.5)
            record = self.show_job(job_id)
        return record

    def sacct(self, job_id: str, fields: str, timeout: float = 15) -> list[dict[str, str]]:
        """sacct rows of the job allocation (-X), waiting until every requested field is filled in.

        Why wait for all fields: the record lands up to ~1 s after the job ends, and for a short job
        slurmdbd first shows State=COMPLETED with an empty Partition, filled in ~0.6 s later (seen on 22.05).
        """
        names = fields.split(",")
        deadline = time.monotonic() + timeout
        while True:
            proc = _run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", fields])
            assert proc.returncode == 0, f"sacct failed: {proc.stderr.strip()}"
            rows = [dict(zip(names, line.split("|"), strict=False)) for line in proc.stdout.splitlines() if line.strip()]
            if (rows and all(all(row.values()) for row in rows)) or time.monotonic() > deadline:
                return rows
            time.sleep(0.5)

    def cancel(self, job_ids: Sequence[str]) -> None:
        """scancel the given jobs (finished ones are ignored by SLURM)."""
        if job_ids:
            _run(["scancel", *job_ids])


def _not_up(reason: str) -> None:
    """Skip, or fail under PORTAFLOW_CI=1 where the cluster is expected to be up."""
    unavailable(f"local SLURM cluster not usable: {reason} (start it with `{CLUSTER_SH} up`)")


def _probe_accounting() -> tuple[bool, str]:
    """Whether sacct works: slurm.conf names slurmdbd AND slurmdbd answers sacctmgr."""
    config = _run(["scontrol", "show", "config"])
    storage = re.search(r"^AccountingStorageType\s*=\s*(\S+)", config.stdout, re.M)
    storage_type = storage.group(1) if storage else "unknown"
    if storage_type != "accounting_storage/slurmdbd":
        return False, f"AccountingStorageType={storage_type} (cluster started with --no-accounting)"
    probe = _run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"], timeout=20)
    if probe.returncode != 0 or CLUSTER_NAME not in probe.stdout.split():
        message = " / ".join((probe.stderr or probe.stdout).strip().splitlines())
        return False, f"slurmdbd does not answer (`cluster.sh accounting off`?): {message}"
    return True, "slurmdbd answers"


@functools.cache
def _probe_cluster() -> SlurmCluster | str:
    """The running cluster, or why it is not usable. Cached: a failing sinfo takes ~0.5 s per call, and pytest
    calls a session fixture that skipped again for every test."""
    if shutil.which("sinfo") is None:
        return "the SLURM client commands (sinfo) are not installed"
    # `scontrol ping` answers at once; sinfo retries a dead controller for ~9 s.
    ping = _run(["scontrol", "ping"], timeout=15)
    if "is UP" not in ping.stdout:
        first_line = (ping.stdout.strip() or ping.stderr.strip() or "no output").splitlines()[0]
        return f"slurmctld does not answer `scontrol ping`: {first_line}"
    try:
        info = _run(["sinfo", "-h", "-N", "-o", "%N|%P|%T"], timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s"
    if info.returncode != 0:
        return f"sinfo failed: {info.stderr.strip()}"
    rows = [line.split("|") for line in info.stdout.split() if line.count("|") == 2]
    if not rows:
        return "sinfo lists no node"
    # The login host's own node, in the default partition (`up --nodes N` adds pfnode1..N in partitions multi, spread).
    node = next((name for name, partition, _ in rows if partition.endswith("*")), rows[0][0])
    # Only the login host's node decides: a compute node may be drained or down for a moment (a node-loss test
    # takes one out while other test processes start), and the tests that use those nodes hold them apart.
    states = {state.rstrip("*~#%$@^-") for name, _, state in rows if name == node}
    if not states <= {"idle", "mixed", "allocated", "completing"}:
        return f"node {node} is {sorted(states)}; `sinfo -R` says why"
    accounting, detail = _probe_accounting()
    return SlurmCluster(node=node, partitions=tuple(dict.fromkeys(p.rstrip("*") for _, p, _ in rows)),
                        accounting=accounting, accounting_detail=detail)


@pytest.fixture(scope="session")
def _cluster_locks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The lock files every test process of this session shares: under xdist, workers' base temporary
    directories are subdirectories of the controller's, so its parent is common to them all."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared / "slurm-cluster.turnstile", shared / "slurm-cluster.lock"


@pytest.fixture(scope="session")
def _node_locks(_cluster_locks: tuple[Path, Path]) -> tuple[Path, Path]:
    """The same kind of lock for the compute nodes in namespaces (partitions multi and spread) alone."""
    shared = _cluster_locks[0].parent
    return shared / "slurm-nodes.turnstile", shared / "slurm-nodes.lock"


@contextlib.contextmanager
def cluster_turn(locks: tuple[Path, Path], exclusive: bool) -> Iterator[None]:
    """Hold the cluster shared (any number of tests at once) or exclusive (one test, nothing else).

    Why a turnstile before the lock: flock gives waiting writers no priority, so an exclusive test could wait
    for as long as other workers keep starting SLURM tests. A writer holds the turnstile while it waits for and
    holds the lock; readers pass through the turnstile (briefly, shared) and so queue behind a waiting writer.
    """
    turnstile_path, lock_path = locks
    with open(turnstile_path, "a") as turnstile, open(lock_path, "a") as lock:
        if exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield  # closing the files releases what is still held


@pytest.fixture(scope="session")
def slurm_cluster(_cluster_locks: tuple[Path, Path]) -> Iterator[SlurmCluster]:
    """The local cluster if it is up (slurmctld answers, node usable); else skip (fail under PORTAFLOW_CI=1).

    Jobs submitted through it are cancelled at the end of the session. The probe (accounting on or off is
    kept for the session) waits while an exclusive test may have changed the cluster.
    """
    with cluster_turn(_cluster_locks, exclusive=False):
        cluster = _probe_cluster()
    if isinstance(cluster, str):
        _not_up(cluster)
    yield cluster
    cluster.cancel(cluster.submitted)


@pytest.fixture(scope="session")
def slurm_accounting(slurm_cluster: SlurmCluster) -> bool:
    """True when sacct/sacctmgr work (slurmdbd up); False after `up --no-accounting` or `accounting off`."""
    return slurm_cluster.accounting


@pytest.fixture
def requires_accounting(slurm_cluster: SlurmCluster) -> None:
    """Skip a test that needs sacct when accounting is off, saying why."""
    if not slurm_cluster.accounting:
        pytest.skip(f"needs SLURM accounting: {slurm_cluster.accounting_detail}")


@pytest.fixture
def slurm_jobs(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The cluster, cancelling the jobs a test submitted when the test ends (pass or fail)."""
    before = len(slurm_cluster.submitted)
    yield slurm_cluster
    slurm_cluster.cancel(slurm_cluster.submitted[before:])


@pytest.fixture(scope="session")
def wordfreq_on_slurm(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`wordfreq_on_slurm(engine)`: the work directory of one run of wordfreq (small) on the `cpu` partition by that
    engine, made on first use and shared by the tests that only read a SLURM run (its report, its RO-Crate): each
    such test would otherwise pay for a run of its own. They share it only inside one test process, so they
    carry `xdist_group("slurm-wordfreq")`. A run is made inside the first test that asks (holding the cluster)."""
    made: dict[str, Path] = {}

    def run(engine: str) -> Path:
        if engine not in made:
            workdir = tmp_path_factory.mktemp(f"wordfreq-slurm-{engine}")
            result = run_portaflow("run", str(WORKFLOWS / "examples" / "wordfreq.yaml"), "--preset", "small", "--site", "slurm-local",
                                   "--engine", engine, "--workdir", str(workdir))
            assert result.returncode == 0, result.stdout + result.stderr
            made[engine] = workdir
        return made[engine]

    return run


@pytest.fixture(autouse=True)
def _cluster_share(request: pytest.FixtureRequest, _cluster_locks: tuple[Path, Path], _node_locks: tuple[Path, Path]) -> Iterator[None]:
    """Every SLURM test holds the cluster shared, or exclusive when marked `slurm_exclusive` (autouse: taken
    before the test's own fixtures, such as one that turns accounting off).

    A test on the compute nodes (it uses the `multinode` fixture) also holds those nodes shared, or exclusive when
    marked `slurm_nodes_exclusive` (it takes a node down): the tests on the login host's partitions go on meanwhile.
    """
    with contextlib.ExitStack() as held:
        held.enter_context(cluster_turn(_cluster_locks, exclusive=request.node.get_closest_marker("slurm_exclusive") is not None))
        if "multinode" in request.fixturenames:
            held.enter_context(cluster_turn(_node_locks, exclusive=request.node.get_closest_marker("slurm_nodes_exclusive") is not None))
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/slurm/ `slurm`, so `-m "not slurm"` deselects them all."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slurm)

