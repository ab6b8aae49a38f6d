"""The `kubernetes:` section of a site profile: what a cloud site's admin says about its cluster.

Field names follow the Kubernetes API (namespace, imagePullPolicy, imagePullSecrets, serviceAccountName,
nodeSelector, tolerations, ttlSecondsAfterFinished, backoffLimit) in the profile's snake_case, so an
admin can read them against `kubectl explain`. Limits stay in `partitions` (a node pool is a partition);
images stay in `container.images`. Names are checked here against the API server's rules (DNS-1123),
so a bad name fails when the profile loads, with its file and line, not at submission.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from portaflow.spec.types import WalltimeSeconds
from portaflow.spec.workflow import Strict

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
"""What the API server accepts for namespaces, volume and container names (at most 63 characters)."""
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
"""What it accepts for object names (secrets, claims, service accounts, pods; at most 253 characters)."""
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def dns_label(value: str) -> str:
    """A DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric, <= 63."""
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        raise ValueError(f"expected a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters), found {value!r}")
    return value


def dns_subdomain(value: str) -> str:
    """A DNS-1123 subdomain: dot-separated labels, <= 253 characters."""
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise ValueError(f"expected a DNS-1123 name (lower-case letters, digits, '-' and '.', at most 253 characters), found {value!r}")
    return value


def label_key(value: str) -> str:
    """A label or node-selector key: optional DNS-1123 prefix and '/', then a name of <= 63 characters."""
    prefix, _, name = value.rpartition("/")
    if (prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix))) or not name or len(name) > 63 or not LABEL_NAME.match(name):
        raise ValueError(f"expected a label key like 'example.org/name' (name: letters, digits, '-', '_', '.', at most 63 characters), found {value!r}")
    return value


def label_value(value: str) -> str:
    """A label value: empty, or letters, digits, '-', '_', '.' starting and ending alphanumeric, <= 63."""
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise ValueError(f"expected a label value (letters, digits, '-', '_', '.', at most 63 characters), found {value!r}")
    return value


DnsLabel = Annotated[str, AfterValidator(dns_label)]
DnsName = Annotated[str, AfterValidator(dns_subdomain)]
LabelKey = Annotated[str, AfterValidator(label_key)]
LabelValue = Annotated[str, AfterValidator(label_value)]
Labels = dict[LabelKey, LabelValue]


class Toleration(Strict):
    """A toleration, as in a pod spec: lets pods land on nodes tainted for a purpose (e.g. GPU nodes)."""

    key: LabelKey | None = Field(None, description="the taint's key (none with operator Exists: tolerate every taint)")
    operator: Literal["Equal", "Exists"] = "Equal"
    value: LabelValue | None = Field(None, description="the taint's value (operator Equal only)")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(None, description="the taint's effect (none: every effect)")

    @model_validator(mode="after")
    def _operator_rules(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("value: a toleration with operator Exists takes no value (the API server refuses it)")
        if self.key is None and self.operator != "Exists":
            raise ValueError("key: a toleration without a key must use operator Exists (the API server refuses it)")
        return self


class NodePool(Strict):
    """How pods for one partition reach that partition's nodes."""

    node_selector: Labels = Field(default_factory=dict, description="node labels a pod of this partition requires")
    tolerations: list[Toleration] = Field(default_factory=list, description="taints of this pool's nodes that its pods tolerate")
    node_affinity: dict[LabelKey, list[LabelValue]] = Field(default_factory=dict, description="node label -> values, one of which "
                                                            "a node must have (requiredDuringScheduling, operator In): several GPU "
                                                            "products or zones where a node selector takes one")
    gpu_resource: LabelKey | None = Field(None, description="the extended resource this pool's GPUs are requested as (instead of "
                                          "kubernetes.gpu_resource): amd.com/gpu on an AMD pool beside NVIDIA ones")


class SecurityContext(Strict):
    """A pod's securityContext: which user and group its processes run as (sites that forbid root pods require it)."""

    run_as_user: int | None = Field(None, ge=0, description="runAsUser")
    run_as_group: int | None = Field(None, ge=0, description="runAsGroup")
    fs_group: int | None = Field(None, ge=0, description="fsGroup: group owning mounted volumes")
    run_as_non_root: bool | None = Field(None, description="runAsNonRoot")


class VolumeClaim(Strict):
    """A PersistentVolumeClaim mounted into every pod (shared data, the work directory)."""

    claim: DnsLabel = Field(..., description="the PVC's name in the namespace (created by the site); a DNS-1123 label, since both engines name the pod's volume after it")
    mount_path: str = Field(..., pattern=r"^/", description="where pods see it (absolute)")
    read_only: bool = False


class ObjectStore(Strict):
    """Staging through an object store for engines that assume no shared filesystem (Snakemake's plugin)."""

    provider: Literal["s3", "gcs"] = Field(..., description="the Snakemake storage plugin (snakemake-storage-plugin-<provider>)")
    prefix: str = Field(..., pattern=r"^[a-z0-9]+://.+", description="where the run's files live, e.g. s3://bucket/portaflow")
    endpoint_url: str | None = Field(None, pattern=r"^https?://", description="the store's endpoint for S3-compatible stores other than AWS (e.g. a site's Ceph RGW or MinIO); credentials never go here: the storage plugin reads them from the environment")


class KubernetesSettings(Strict):
    """Everything a Kubernetes site sets once for every pod portaflow's engines create."""

    namespace: DnsLabel = Field("default", description="namespace for every pod and job")
    service_account: DnsName | None = Field(None, description="serviceAccountName of every pod")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field("IfNotPresent", description="imagePullPolicy of every container")
    image_pull_secrets: list[DnsName] = Field(default_factory=list, description="names of registry secrets in the namespace (never the secrets themselves)")
    default_container: str = Field("portaflow", description="container (a name in container.images) for steps that name none; it must hold portaflow and the engine")
    gpu_resource: LabelKey = Field("nvidia.com/gpu", description="the extended resource GPUs are requested as")
    security_context: SecurityContext | None = Field(None, description="securityContext of every pod (runAsUser, runAsGroup, "
                                                     "fsGroup, runAsNonRoot)")
    node_pools: dict[str, NodePool] = Field(default_factory=dict, description="partition name -> node selector and tolerations of its nodes")
    gpu_model_selectors: dict[str, Labels] = Field(default_factory=dict, description="GPU model (as in partitions' gpu_models) -> node labels selecting it")
    volume_claims: list[VolumeClaim] = Field(default_factory=list, description="PVCs mounted into every pod")
    object_store: ObjectStore | None = Field(None, description="object-store staging for engines without a shared filesystem")
    labels: Labels = Field(default_factory=dict, description="extra labels on every pod and job (e.g. cost centre)")
    ttl_after_finished: WalltimeSeconds | None = Field(3600, description="finished Jobs are deleted after this long (ttlSecondsAfterFinished)")
    backoff_limit: int = Field(0, ge=0, description="pod retries of a Job (portaflow's own retries are per step)")
    deadline_grace: int = Field(60, ge=0, description="seconds past a step's walltime before Kubernetes stops its pod (activeDeadlineSeconds)")
    dask_operator: bool = Field(False, description="the namespace runs the Dask Kubernetes operator: dask.mode jobs creates a DaskCluster resource instead of worker pods")

    @model_validator(mode="after")
    def _unique(self) -> KubernetesSettings:
        paths = [v.mount_path for v in self.volume_claims]
        if len(set(paths)) != len(paths):
            raise ValueError("volume_claims: two claims mounted at the same path")
        return self
