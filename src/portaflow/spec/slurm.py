"""The `slurm:` section of a site profile: what only a SLURM site's jobs are asked with.

Names follow sbatch's own options (qos, reservation, constraint) and what Snakemake's SLURM plugin
and Parsl's SlurmProvider call the rest (status command, launcher), so a SLURM admin recognises them.
What several schedulers read stays at the top level or in its shared section: `account`,
`account_required`, `extra_directives`, `partitions` (a partition's own `constraint` included) and
`polling`. See docs/site-profiles.md.

Why a section: a key that only one scheduler reads, written at the top level, looked meaningful on
every site; grouped here, a profile says which scheduler it is for, as `htcondor:` and `kubernetes:` do.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from portaflow.spec.templates import template_validator
from portaflow.spec.types import OneLine, SchedulerWord
from portaflow.spec.workflow import Strict

MOVED_TO_SLURM: dict[tuple[str, ...], tuple[str, ...]] = {
    ("qos",): ("slurm", "qos"),
    ("reservation",): ("slurm", "reservation"),
    ("constraint",): ("slurm", "constraint"),
    ("memory_rule",): ("slurm", "memory_rule"),
    ("gpu_syntax",): ("slurm", "gpu_syntax"),
    ("gpu_model_syntax",): ("slurm", "gpu_model_syntax"),
    ("polling", "status_command"): ("slurm", "status_command"),
    ("parsl", "launcher"): ("slurm", "launcher"),
}
"""Keys that older profiles wrote elsewhere -> where they live now. Loading reports an old key with
its new place (not a bare 'unknown key'), so an admin knows what to change."""


GPU_SYNTAX_FIELDS = ("n",)
"""The fields `slurm.gpu_syntax` may use: {n}, the number of GPUs."""

GPU_MODEL_SYNTAX_FIELDS = ("n", "model")
"""The fields `slurm.gpu_model_syntax` may use: {n} and {model}, the GPU model a step names."""

# A GPU request template must say where the count goes (else every GPU job would ask for the same thing), and may
# use no other field than its own: an unknown one would fail only when a GPU job is planned.
GpuTemplate = Annotated[OneLine, AfterValidator(template_validator(GPU_SYNTAX_FIELDS, "gpu_syntax", required=("n",)))]
GpuModelTemplate = Annotated[OneLine, AfterValidator(template_validator(GPU_MODEL_SYNTAX_FIELDS, "gpu_model_syntax", required=("n",)))]


class SlurmSettings(Strict):
    """How SLURM jobs are asked for beyond partition, account and size: sbatch options and the site's rules."""

    qos: SchedulerWord | None = Field(None, description="--qos for every job")
    reservation: SchedulerWord | None = Field(None, description="--reservation for every job")
    constraint: OneLine | None = Field(None, description="--constraint for every job (AND-ed with a partition's own constraint)")
    memory_rule: Literal["per_node", "per_cpu", "none"] = Field("per_node", description="per_node: --mem; per_cpu: --mem-per-cpu; none: no memory flag")
    gpu_syntax: GpuTemplate = Field("--gres=gpu:{n}", description="how N GPUs are requested, e.g. '--gres=gpu:{n}', '--gpus={n}', '--gpus-per-node={n}'")
    gpu_model_syntax: GpuModelTemplate = Field("--gres=gpu:{model}:{n}", description="how N GPUs of a model are requested")
    status_command: Literal["auto", "sacct", "squeue"] = Field("auto", description="how job states are read: auto: sacct when accounting answers, else squeue")
    launcher: Literal["single", "srun"] = Field("single", description="how a Parsl block starts its worker pool in the job: single: once, on the first node; srun: through srun, on every node")
