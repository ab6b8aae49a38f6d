"""The workflow description: what a scientist writes once, for every site.

A workflow is a set of named steps. Each step runs ONE of: a shell `command` template, a Python
callable (`python: module:function`) or a Dask callable (`dask: module:function`, which receives a
Dask client). Files connect the steps: the DAG is derived from inputs and outputs, as in Snakemake.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from portaflow.spec.types import EnvName, Identifier, MemoryMiB, SchedulerWord, StepName, WalltimeSeconds


class Strict(BaseModel):
    """Base for every model users write: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DaskWorkers(Strict):
    """The Dask workers a `dask` step wants; the site profile's `dask` section says how they are made."""

    cpu: int = Field(1, ge=0, description="number of CPU workers")
    gpu: int = Field(0, ge=0, description="number of GPU workers (each advertises the site's GPU resource)")
    threads: int = Field(1, ge=1, description="threads per worker")
    memory: MemoryMiB | None = Field(None, description="memory per worker (default: the site's dask.worker_memory)")


class Resources(Strict):
    """What one task of a step needs. Units are normalised when loaded (seconds, MiB)."""

    cores: int = Field(1, ge=1, description="CPU cores per task")
    memory: MemoryMiB = Field(1024, description="memory per task, e.g. '4GB'")
    walltime: WalltimeSeconds = Field(3600, description="time limit per task, e.g. '90m', '2-00:00:00'")
    gpus: int = Field(0, ge=0, description="GPUs per task")
    gpu_model: SchedulerWord | None = Field(None, description="a GPU model the site names (e.g. 'a100')")
    nodes: int = Field(1, ge=1, description="nodes per task")
    dask_workers: DaskWorkers | None = Field(None, description="Dask workers, for `dask` steps")


class Comparison(Strict):
    """How two runs' copies of an output are compared (used by tests and the portability matrix)."""

    method: Literal["sha256", "json", "fits", "root", "png", "text", "exists"] = Field(
        "sha256", description="sha256 (bytes), json/fits/root/png (numbers within rtol/atol), text, exists (presence only)"
    )
    rtol: float = Field(0.0, ge=0.0, description="relative tolerance for numeric comparators")
    atol: float = Field(0.0, ge=0.0, description="absolute tolerance for numeric comparators")
    ignore: list[str] = Field(default_factory=list, description="keys or header cards that may differ (e.g. timestamps)")


def output_path_problem(path: str) -> str | None:
    """Why an output path would leave the work directory, or None when it stays inside.

    Why: portaflow deletes a stale or failed task's outputs (directories with rmtree), so an output path is
    a path portaflow may remove. An absolute path, a `..` component or the work directory itself ('.', '')
    would let a run delete what it does not own. Checked on the text as written (template fields left
    in: '/{x}' is absolute whatever x is) and again by the planner once parameters are filled in."""
    if path.startswith("/"):
        return "is absolute"
    parts = path.split("/")
    if ".." in parts:
        return "leaves the work directory ('..')"
    if all(p in ("", ".") for p in parts):
        return "is the work directory itself"
    return None


def _confined(path: str) -> str:
    problem = output_path_problem(path)
    if problem:
        raise ValueError(f"output path {path!r} {problem}; outputs must be relative paths inside the work directory")
    return path


OutputPath = Annotated[str, AfterValidator(_confined)]
"""An output path template that stays inside the work directory as written."""


class Output(Strict):
    """One output file or directory, with the way its copies are compared."""

    path: OutputPath = Field(..., min_length=1, description="path template relative to the work directory")
    directory: bool = Field(False, description="the output is a directory (Measurement Set, zarr store)")
    compare: Comparison = Field(default_factory=Comparison)

    @field_validator("compare", mode="before")
    @classmethod
    def _method_shorthand(cls, value: Any) -> Any:
        return {"method": value} if isinstance(value, str) else value


ScatterValues = list[Any] | str | dict[str, Any]


class Step(Strict):
    """One step of the workflow; with `scatter` it becomes one task per value (or combination)."""

    description: str = ""
    command: str | None = Field(None, description="shell command template")
    python: str | None = Field(None, description="a Python callable, 'module:function'")
    dask: str | None = Field(None, description="a Python callable receiving a Dask client, 'module:function'")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for python/dask callables (templates allowed)")
    inputs: dict[Identifier, str | list[str]] = Field(default_factory=dict)
    outputs: dict[Identifier, OutputPath | Output] = Field(default_factory=dict)
    scatter: dict[Identifier, ScatterValues] = Field(default_factory=dict, description="fan-out: variable -> list, '{param}' or {range: N}")
    resources: Resources = Field(default_factory=Resources)
    container: Identifier | None = Field(None, description="a container name from containers/ (resolved by the site profile)")
    retries: int = Field(0, ge=0, le=10)
    env: dict[EnvName, str] = Field(default_factory=dict, description="environment variables for the step (names: letters, digits, '_')")

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Step:
        given = [k for k in ("command", "python", "dask") if getattr(self, k) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"expected exactly one of 'command', 'python' or 'dask', found {found}")
        for key in ("python", "dask"):
            target = getattr(self, key)
            if target is not None and (target.count(":") != 1 or not all(target.split(":"))):
                raise ValueError(f"{key}: expected 'module:function', found {target!r}")
        if self.dask is None and self.resources.dask_workers is not None:
            raise ValueError("resources.dask_workers is only for 'dask' steps")
        if not self.outputs:
            # Both engines decide from outputs: Snakemake runs a rule only to make its outputs (a step without any never
            # ran there, while Parsl ran it), and portaflow records and removes a task's work through them.
            raise ValueError("a step needs at least one output (its results, or a file such as a log or a 'done' marker it writes): "
                             "both engines run a step to make its outputs, and reruns are decided from them")
        return self

    @property
    def kind(self) -> Literal["command", "python", "dask"]:
        if self.command is not None:
            return "command"
        return "python" if self.python is not None else "dask"

    def output_specs(self) -> dict[str, Output]:
        """Outputs with the shorthand (a bare path) expanded."""
        return {k: (Output(path=v) if isinstance(v, str) else v) for k, v in self.outputs.items()}


Scalar = str | int | float | bool


class Workflow(Strict):
    """A whole workflow description."""

    name: Identifier
    description: str = ""
    version: str | None = None
    parameters: dict[Identifier, Scalar | list[Scalar]] = Field(default_factory=dict)
    presets: dict[Identifier, dict[Identifier, Scalar | list[Scalar]]] = Field(
        default_factory=dict,
        description="named sets of parameter values (e.g. 'small' for CI and the portability matrix), chosen with --preset",
    )
    steps: dict[StepName, Step] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _presets_set_known_parameters(self) -> Workflow:
        for preset, values in self.presets.items():
            unknown = sorted(set(values) - set(self.parameters))
            if unknown:
                raise ValueError(f"presets.{preset}: sets {', '.join(unknown)}, which is not among the parameters "
                                 f"({', '.join(self.parameters) or 'none'})")
        return self

    def preset(self, name: str) -> dict[str, Any]:
        """The parameter values of preset `name` (KeyError with the known names if there is none)."""
        if name not in self.presets:
            raise KeyError(f"workflow {self.name} has no preset {name!r} (presets: {', '.join(self.presets) or 'none'})")
        return dict(self.presets[name])
