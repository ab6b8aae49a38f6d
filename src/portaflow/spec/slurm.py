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

import re
import string
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


GPU_SYNTAX_FIELDS = ("n", "model")
"""The fields `slurm.gpu_syntax` may use: {n}, the number of GPUs, and {model}, the GPU model (the step's, else its
partition's `default_gpu_model`)."""


def gpu_template_fields(value: str) -> list[str]:
    """The placeholders of a GPU request template (`{{`/`}}` are literal braces); ValueError for broken braces."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a template: {exc} (write a literal brace as '{{{{' or '}}}}')") from None

GPU_MODEL_SYNTAX_FIELDS = ("n", "model")
"""The fields `slurm.gpu_model_syntax` may use: {n} and {model}, the GPU model a step names."""

# A GPU request template must say where the count goes (else every GPU job would ask for the same thing), and may
# use no other field than its own: an unknown one would fail only when a GPU job is planned.
GpuTemplate = Annotated[OneLine, AfterValidator(template_validator(GPU_SYNTAX_FIELDS, "gpu_syntax", required=("n",)))]
GpuModelTemplate = Annotated[OneLine, AfterValidator(template_validator(GPU_MODEL_SYNTAX_FIELDS, "gpu_model_syntax", required=("n",)))]


def _percent(value: str) -> str:
    """'80%': a share of each job's own walltime (a constant --time-min could exceed a short job's --time)."""
    text = str(value).strip()
    if not (text.endswith("%") and text[:-1].isdigit() and 1 <= int(text[:-1]) <= 100):
        raise ValueError(f"expected a share of the job's walltime from '1%' to '100%', found {value!r}")
    return text


Percent = Annotated[str, AfterValidator(_percent)]

def _spank_option(value: str) -> str:
    """A long sbatch option a SPANK plugin adds (`--container-image`), by its name alone (its value goes in extra_directives)."""
    if not re.fullmatch(r"--[A-Za-z][A-Za-z0-9-]*", value):
        raise ValueError(f"expected a long option's name, '--' and letters, digits or '-' (e.g. '--container-image'), found {value!r}")
    return value


SpankOption = Annotated[str, AfterValidator(_spank_option)]


class SlurmSettings(Strict):
    """How SLURM jobs are asked for beyond partition, account and size: sbatch options and the site's rules."""

    qos: SchedulerWord | None = Field(None, description="--qos for every job")
    reservation: SchedulerWord | None = Field(None, description="--reservation for every job")
    constraint: OneLine | None = Field(None, description="--constraint for every job (AND-ed with a partition's own constraint)")
    memory_rule: Literal["per_node", "per_cpu", "none"] = Field("per_node", description="per_node: --mem; per_cpu: --mem-per-cpu; none: no memory flag")
    gpu_syntax: GpuTemplate = Field("--gres=gpu:{n}", description="how N GPUs are requested, e.g. '--gres=gpu:{n}', '--gpus={n}', "
                                    "'--gpus-per-node={n}'; with {model} ('--gpus={model}:{n}') every GPU request names its model "
                                    "(the step's, else the partition's default_gpu_model) and gpu_model_syntax is not used")
    gpu_model_syntax: GpuModelTemplate = Field("--gres=gpu:{model}:{n}", description="how N GPUs of a model are requested (a step's "
                                          "gpu_model, or the partition's default_gpu_model)")
    time_min: Percent | None = Field(None, description="--time-min as a share of each job's walltime ('75%'): the job may start "
                                                       "in a backfill gap that long, and SLURM may shorten it to no less")
    spank_options: list[SpankOption] = Field(default_factory=list, description="sbatch options the site's SPANK plugins add "
                                             "('--container-image' with pyxis, NERSC's '--module'): allowed in extra_directives, "
                                             "and reported as not checkable where this machine's sbatch does not know them")
    status_command: Literal["auto", "sacct", "squeue"] = Field("auto", description="how job states are read: auto: sacct when accounting answers, else squeue")
    launcher: Literal["single", "srun"] = Field("single", description="how a Parsl block starts its worker pool in the job: single: once, on the first node; srun: through srun, on every node")
