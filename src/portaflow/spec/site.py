"""The site profile: what a site admin writes once, for every workflow.

Field names follow what admins already know from Snakemake, Parsl, dask-jobqueue and Nextflow
(partition, account, qos, constraint, worker_init, scheduler_options...). What only one scheduler
reads lives in that scheduler's own section (`slurm:`, `htcondor:`, `kubernetes:`). See docs/site-profiles.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from portaflow.spec.htcondor import HTCondorSettings
from portaflow.spec.kubernetes import KubernetesSettings
from portaflow.spec.slurm import SlurmSettings
from portaflow.spec.types import CoresOrAuto, EnvName, Identifier, MemoryMiB, MemoryOrAuto, OneLine, SchedulerWord, WalltimeSeconds
from portaflow.spec.workflow import Strict
from portaflow.units import describe_walltime, parse_walltime_seconds

ContainerRuntime = Literal["apptainer", "singularity", "podman", "docker", "none"]


SlurmPartitionList = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")]
"""One SLURM partition name, or several separated by commas (sbatch takes the first that can start the job)."""


class Partition(Strict):
    """A partition (queue) and its limits; the plan picks the smallest one that fits a step."""

    max_walltime: WalltimeSeconds = Field(..., description="longest time limit a job may ask for")
    cores_per_node: CoresOrAuto = Field(..., ge=1)
    memory_per_node: MemoryOrAuto = Field(..., description="memory a job may ask for on one node")
    gpus_per_node: int = Field(0, ge=0)
    gpu_models: list[SchedulerWord] = Field(default_factory=list, description="GPU models offered, as the site names them")
    default_gpu_model: SchedulerWord | None = Field(None, description="the model a GPU step that names none is given here (asked for by name)")
    max_nodes: int = Field(1, ge=1)
    default: bool = Field(False, description="used for helper jobs (Parsl blocks, Dask workers) when nothing else decides")
    constraint: OneLine | None = Field(None, description="a --constraint always added for this partition")
    priority: int = Field(0, description="preference among partitions that fit a task (higher first), after 'fewest GPUs'")
    auto: bool = Field(True, description="false: never chosen by the plan itself; only where the profile names it "
                                         "(dask worker partitions) or a user turns it on (--site-set partitions.NAME.auto=true)")
    min_cores: int = Field(1, ge=1, description="fewest cores a job here may ask for (the site refuses smaller jobs)")
    min_nodes: int = Field(1, ge=1, description="fewest nodes a job here may ask for")
    min_memory: MemoryMiB = Field(0, description="least memory a job here may ask for")
    exclusive: bool = Field(False, description="jobs get (and are charged) whole nodes: small tasks go to shared partitions")
    account: SchedulerWord | None = Field(None, description="account (budget) for this partition's jobs, instead of the site's")
    qos: SchedulerWord | None = Field(None, description="SLURM: --qos for this partition's jobs, instead of slurm.qos")
    qos_by_walltime: dict[str, WalltimeSeconds] = Field(default_factory=dict, description="SLURM: QOS name -> longest walltime it "
                                                        "allows; a job gets the shortest that covers its walltime (instead of qos)")
    slurm_partition: SlurmPartitionList | None = Field(None, description="SLURM: the partition name(s) sent (--partition), when the "
                                                       "key is an alias (one queue with several constraints) or the site accepts a list ('lsst,htc')")
    max_jobs_per_user: int | None = Field(None, ge=1, description="most of a run's jobs queued or running here at once (the site's "
                                          "QOS MaxSubmitJobsPerUser); both engines keep to it")
    clusters: SlurmPartitionList | None = Field(None, description="SLURM: the cluster(s) of a multi-cluster site this partition "
                                                "belongs to (--clusters/-M), used to submit, poll and cancel its jobs")
    max_memory_per_core: MemoryMiB | None = Field(None, description="most memory per requested core a job may ask for here")
    extra_directives: list[str] = Field(default_factory=list, description="scheduler options added to this partition's jobs, after the site's")
    modules: list[OneLine] = Field(default_factory=list, description="environment modules loaded in this partition's jobs, after the site's")
    worker_init: list[OneLine] = Field(default_factory=list, description="shell lines run in this partition's jobs, after the site's worker_init")


    @model_validator(mode="after")
    def _consistent(self) -> Partition:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes {self.min_nodes} is more than max_nodes {self.max_nodes}")
        if isinstance(self.cores_per_node, int) and self.min_cores > self.cores_per_node:
            raise ValueError(f"min_cores {self.min_cores} is more than cores_per_node {self.cores_per_node}")
        if self.qos and self.qos_by_walltime:
            raise ValueError("qos and qos_by_walltime both set: give one")
        if self.qos_by_walltime and isinstance(self.max_walltime, int) and max(self.qos_by_walltime.values()) < self.max_walltime:
            raise ValueError(f"qos_by_walltime covers at most {describe_walltime(max(self.qos_by_walltime.values()))}, less than "
                             f"max_walltime ({describe_walltime(self.max_walltime)}): add a QOS for the longest jobs, or lower max_walltime")
        if self.default_gpu_model is None:
            return self
        if not self.gpus_per_node:
            raise ValueError(f"default_gpu_model {self.default_gpu_model!r} on a partition without GPUs (gpus_per_node is 0)")
        if self.gpu_models and self.default_gpu_model not in self.gpu_models:
            raise ValueError(f"default_gpu_model {self.default_gpu_model!r} is not one of this partition's gpu_models ({', '.join(self.gpu_models)})")
        return self


class ContainerSettings(Strict):
    """How steps run in containers on this site."""

    runtime: ContainerRuntime = "none"
    executable: str | None = Field(None, description="path of the runtime binary, if not the runtime's name on PATH")
    binds: list[str] = Field(default_factory=list, description="extra bind mounts, 'src[:dst[:opts]]'")
    gpu_flag: str | None = Field(None, description="flag that exposes GPUs (default: --nv for apptainer, device options for podman/docker)")
    cache_dir: str | None = Field(None, description="image cache (APPTAINER_CACHEDIR); keep it off home directories")
    images: dict[str, str] = Field(default_factory=dict, description="container name -> image location (SIF path, docker://, oras://, local image, CVMFS directory)")
    image_dir: str | None = Field(None, description="directory holding '<name>.sif' for names not listed in images")
    run_options: list[str] = Field(default_factory=list, description="extra options for every container run")
    env_passthrough: list[EnvName] = Field(default_factory=list, description="host environment variables passed into containers (by name; credentials go this way)")


class Environment(Strict):
    """How a job's shell is prepared before a step runs."""

    modules: list[OneLine] = Field(default_factory=list, description="environment modules to load")
    worker_init: list[str] = Field(default_factory=list, description="shell lines run before each job (e.g. activate a venv)")
    env: dict[EnvName, str] = Field(default_factory=dict, description="environment variables for every step (names: letters, digits, '_'; never a credential's value)")


class Network(Strict):
    """How compute nodes reach the driver (Parsl interchange, Dask scheduler)."""

    interface: str | None = Field(None, description="network interface whose address workers use (e.g. ib0)")
    address: str | None = Field(None, description="explicit address (wins over interface)")
    port_range: tuple[int, int] | None = Field(None, description="ports the driver may listen on")


def _submit_rate(value: str) -> str:
    """'10/1m': at most 10 submissions in any minute (Snakemake's --max-jobs-per-timespan, whose form it is)."""
    text = str(value).strip()
    match = re.fullmatch(r"([1-9][0-9]*)/([0-9]+[smhd])", text)
    if not match or parse_walltime_seconds(match.group(2)) < 1:
        raise ValueError(f"expected 'N/SPAN', at most N job submissions in any SPAN (a whole number of s, m, h or d), "
                         f"e.g. '10/1m' or '1/5s'; found {value!r}")
    return text


SubmitRateText = Annotated[str, AfterValidator(_submit_rate)]


class Polling(Strict):
    """Polling etiquette: how often and how the scheduler is asked about jobs."""

    interval: WalltimeSeconds = Field(30, description="seconds between batched status queries")
    max_queued_jobs: int = Field(100, ge=1, description="most jobs queued at once")
    submit_rate: SubmitRateText | None = Field(None, description="at most N submissions per timespan, 'N/SPAN' ('10/1m', '1/5s'); "
                                               "both engines keep to it (Snakemake's --max-jobs-per-timespan)")


class Storage(Strict):
    """Filesystems as jobs see them."""

    shared_filesystem: bool = True
    work_dir: str | None = Field(None, description="default work directory for runs")
    scratch_dir: str | None = Field(None, description="node-local scratch (e.g. $TMPDIR)")


class DaskSettings(Strict):
    """How Dask clusters for `dask` steps are made on this site."""

    mode: Literal["local", "in_allocation", "jobs"] = Field(
        "in_allocation",
        description="local/in_allocation: workers inside the step's own job; jobs: workers as separate scheduler jobs (dask-jobqueue)",
    )
    worker_cores: int = Field(1, ge=1)
    worker_memory: MemoryMiB = Field(2048)
    gpu_resource: str = Field("GPU", description="Dask worker resource GPU workers advertise")
    worker_partition: str | None = Field(None, description="partition for worker jobs (mode: jobs)")
    gpu_worker_partition: str | None = None


class Parsl(Strict):
    """Parsl-specific tuning (the rest is derived from the profile)."""

    max_blocks: int = Field(4, ge=1)
    init_blocks: int = Field(0, ge=0)


class Snakemake(Strict):
    """Snakemake-specific tuning (the rest is derived from the profile)."""

    jobs: int = Field(100, ge=1, description="most jobs submitted at once (--jobs)")
    latency_wait: int = Field(5, ge=0)


class SiteProfile(Strict):
    """A whole site profile."""

    name: Identifier
    description: str = ""
    contact: str | None = None
    url: str | None = None
    example: bool = Field(False, description="an example the site must confirm, not an official profile")
    extends: str | None = Field(None, description="a profile (name or file) whose values this one overrides")
    scheduler: Identifier = Field(..., description="local, slurm, htcondor, kubernetes, or an installed adapter's name (entry point group portaflow.schedulers)")
    partitions: dict[Identifier, Partition] = Field(..., min_length=1)
    account: SchedulerWord | None = None
    account_required: bool = Field(False, description="jobs without an account are refused here: portaflow asks the user for one before submitting")
    extra_directives: list[OneLine] = Field(default_factory=list, description="escape hatch: scheduler flags added to every job, one option each (managed flags are refused)")
    container: ContainerSettings = Field(default_factory=ContainerSettings)
    environment: Environment = Field(default_factory=Environment)
    network: Network = Field(default_factory=Network)
    polling: Polling = Field(default_factory=Polling)
    storage: Storage = Field(default_factory=Storage)
    dask: DaskSettings = Field(default_factory=DaskSettings)
    parsl: Parsl = Field(default_factory=Parsl)
    snakemake: Snakemake = Field(default_factory=Snakemake)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings, description="SLURM sites: qos, reservation, constraint, memory and GPU request rules, status command, Parsl launcher (docs/site-profiles.md)")
    htcondor: HTCondorSettings = Field(default_factory=HTCondorSettings, description="HTCondor pools: schedd, accounting group, runtime attribute or flavours, GPUs, containers, credentials (docs/site-profiles.md)")
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings, description="Kubernetes sites: namespace, images, node pools, volumes (docs/site-profiles.md)")

    @model_validator(mode="after")
    def _one_default(self) -> SiteProfile:
        defaults = [n for n, p in self.partitions.items() if p.default]
        if len(defaults) > 1:
            raise ValueError(f"partitions: at most one default partition, found {', '.join(defaults)}")
        return self

    @property
    def default_partition(self) -> str:
        """The partition marked default, else the first one."""
        for name, part in self.partitions.items():
            if part.default:
                return name
        return next(iter(self.partitions))
