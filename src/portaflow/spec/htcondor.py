"""The `htcondor:` section of a site profile: what an HTCondor pool needs beyond partitions.

Names follow HTCondor's own submit commands and configuration (accounting_group, requirements,
require_gpus, SCHEDD_HOST, COLLECTOR_HOST, use_oauth_services), so a pool admin recognises them.
The pool's limits stay in `partitions` (a pool is usually one partition); see docs/site-profiles.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from portaflow.spec.types import AttributeName, EnvName, MemoryMiB, OneLine, SchedulerWord, WalltimeSeconds
from portaflow.spec.workflow import Strict

_WRAPPER_PATH = re.compile(r"/[A-Za-z0-9_.+@%:=/-]*[A-Za-z0-9_.+@%:=-]")


def _job_wrapper(value: str) -> str:
    if not _WRAPPER_PATH.fullmatch(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
        raise ValueError(f"{value!r}: expected the absolute path of a script on the submitting host, e.g. "
                         "/afs/desy.de/user/j/jdoe/naf-wrapper.sh (letters, digits and _ . + @ % : = - /, no '..'; no spaces, quotes, "
                         "commas, $ or ~: it is written into every submit description as the job's executable)")
    return value


JobWrapperPath = Annotated[str, AfterValidator(_job_wrapper),
                           WithJsonSchema({"type": "string", "pattern": "^/[A-Za-z0-9_.+@%:=/-]*[A-Za-z0-9_.+@%:=-]$"})]
"""The absolute path of a job wrapper script on the submitting host (written into submit descriptions as `executable`)."""


class HTCondorCredentials(Strict):
    """How jobs and the submitting client authenticate. Only names are kept here, never a secret:
    token files are found through environment variables at run time, job tokens come from the pool's credd."""

    auth_methods: list[SchedulerWord] = Field(default_factory=list, description="client authentication methods for condor_submit and the bindings (SEC_CLIENT_AUTHENTICATION_METHODS), e.g. [SCITOKENS, IDTOKENS]")
    token_file_env: EnvName | None = Field(None, description="environment variable holding the path of the user's token file (e.g. BEARER_TOKEN_FILE); passed to HTCondor as SCITOKENS_FILE when the run starts")
    oauth_services: list[SchedulerWord] = Field(default_factory=list, description="credential services whose tokens the pool's credd gives each job (use_oauth_services)")


class HTCondorSettings(Strict):
    """Where jobs are submitted and the pool-specific submit commands portaflow adds to each job."""

    schedd: OneLine | None = Field(None, description="the schedd to submit to (SCHEDD_HOST); unset: the local schedd")
    collector: OneLine | None = Field(None, description="the pool's collector (COLLECTOR_HOST), host[:port]")
    accounting_group: SchedulerWord | None = Field(None, description="accounting_group for every job (fair-share group)")
    accounting_group_user: SchedulerWord | None = Field(None, description="accounting_group_user (defaults to the submitting user)")
    request_disk: MemoryMiB | None = Field(None, description="scratch disk each job asks for (request_disk)")
    requirements: OneLine | None = Field(None, description="a ClassAd expression every job's slot must satisfy")
    runtime_attribute: AttributeName | list[AttributeName] | None = Field(
        "MaxRuntime", description="job attribute(s) set to the step's walltime in seconds: one name (MaxRuntime) or a list, for pools "
                                  "that read several (DESY NAF: [RequestRuntime, MaxRuntime]); null: none")
    getenv: bool | list[EnvName] = Field(False, description="environment variables of the submitting shell copied into every job "
                                         "(getenv): a list of names (HTCondor 10+), or true for all; environment.env sets values")
    flavours: dict[str, WalltimeSeconds] = Field(default_factory=dict, description="named runtime classes -> longest walltime each allows (CERN's JobFlavour); the shortest that covers a step is used")
    flavour_attribute: AttributeName = Field("JobFlavour", description="job attribute that carries the chosen flavour")
    gpu_requirements: dict[str, OneLine] = Field(default_factory=dict, description="GPU model (as workflows name it) -> require_gpus expression")
    container_mode: Literal["wrap", "attribute", "universe"] = Field(
        "wrap",
        description="wrap: portaflow runs the container inside the job; attribute: the pool starts the job in the image named by image_attribute; universe: container universe with container_image",
    )
    image_attribute: AttributeName = Field("SingularityImage", description="job attribute naming the image when container_mode is attribute")
    job_wrapper: JobWrapperPath | None = Field(
        None, description="a script every job runs through, on both engines: it is each job's executable (transferred from the "
                          "submitting host), called with the job's command as its arguments, and ends with `exec \"$@\"` (e.g. to set up "
                          "the site's software or a grid proxy first); absolute path on the submitting host")
    credentials: HTCondorCredentials = Field(default_factory=HTCondorCredentials)
