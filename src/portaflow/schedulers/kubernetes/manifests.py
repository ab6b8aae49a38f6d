"""Kubernetes objects as the API server sees them: serialising client models, quantities, image references, and the
server-side checks (names, labels, resources, restart policies) that the OpenAPI schema does not hold.

Shared by the adapter (schedulers/kubernetes/__init__.py) and its engine and Dask modules; it knows nothing of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from portaflow.containers import resolve_image
from portaflow.errors import InputError
from portaflow.spec.kubernetes import DNS1123_LABEL, DNS1123_SUBDOMAIN, label_key, label_value

KUBERNETES_VERSION = "1.32"
"""The API version manifests are built for (the `kubernetes` client 32.x models) and validated against."""
MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "portaflow/run-id"
"""Every pod and job of a run carries it: one label selector finds them all (to cancel, to inspect)."""
TASK_LABEL = "portaflow/task"
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")


class ManifestError(InputError):
    """A manifest the API server would refuse (exit 2: nothing was submitted)."""


def manifest(obj: Any) -> dict[str, Any]:
    """The JSON body the kubernetes client sends for a model (camelCase keys, no None values)."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ('500m', '4Gi', '1e3') as a number; ValueError if the server would refuse it."""
    from kubernetes.utils import parse_quantity as client_parse_quantity

    if not _QUANTITY.match(str(text)):  # the server's grammar; the client's parser also takes some it refuses (' 4Gi')
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. '2', '500m', '4Gi', '4G')")
    return client_parse_quantity(str(text))


def image_reference(site: Any, container: str) -> str:
    """The registry reference a pod pulls for a container name, from `container.images`.

    Why no fallback: a local image name or a SIF path means nothing to a cluster's nodes, so a
    container the profile does not list is bad input, said before submission.
    """
    if container not in site.container.images:
        raise InputError(f"site {site.name}: container {container!r} has no image for Kubernetes pods; "
                         f"add container.images.{container}: REGISTRY/IMAGE:TAG to the profile")
    return re.sub(r"^docker://", "", resolve_image(site, container))



def load_config() -> None:
    """Load kubeconfig (or the in-cluster service account), as both engines do; InputError if neither exists."""
    from kubernetes import config

    try:
        config.load_kube_config()
    except Exception:  # kubeconfig missing or invalid: try the pod's service account
        try:
            config.load_incluster_config()
        except Exception as exc:
            raise InputError(f"no Kubernetes configuration: set KUBECONFIG or run inside the cluster ({exc})") from None


def check_manifest(body: dict[str, Any], where: str = "") -> list[str]:
    """The API server's rules that the OpenAPI schema does not hold: names, restart policy, quantities.

    `body` is the JSON the client would send (see `manifest`). Returns one line per problem.
    """
    problems: list[str] = []
    kind = body.get("kind", "")
    meta = body.get("metadata") or {}
    name = meta.get("name", "")
    prefix = f"{where}{kind} {name}: " if where else f"{kind} {name}: "
    limit = 63 if kind == "Job" else 253  # a Job's name becomes its pods' job-name label value
    if not name or len(name) > limit or not DNS1123_SUBDOMAIN.match(name) or (kind == "Job" and not DNS1123_LABEL.match(name)):
        problems.append(f"metadata.name {name!r}: expected a DNS-1123 {'label' if kind == 'Job' else 'name'} of at most {limit} characters")
    if meta.get("namespace") and not DNS1123_LABEL.match(meta["namespace"]):
        problems.append(f"metadata.namespace {meta['namespace']!r}: expected a DNS-1123 label")
    problems += label_problems(meta.get("labels"), "metadata.labels")
    if kind == "Job":
        spec = body.get("spec") or {}
        for key in ("backoffLimit", "ttlSecondsAfterFinished"):
            if spec.get(key) is not None and spec[key] < 0:
                problems.append(f"spec.{key}: expected >= 0, found {spec[key]}")
        if spec.get("activeDeadlineSeconds") is not None and spec["activeDeadlineSeconds"] <= 0:
            problems.append(f"spec.activeDeadlineSeconds: expected > 0, found {spec['activeDeadlineSeconds']}")
        template = spec.get("template") or {}
        problems += label_problems((template.get("metadata") or {}).get("labels"), "spec.template.metadata.labels")
        pod_spec, path = template.get("spec") or {}, "spec.template.spec"
        if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(f"{path}.restartPolicy: expected Never or OnFailure for a Job, found {pod_spec.get('restartPolicy')!r}")
    else:
        pod_spec, path = body.get("spec") or {}, "spec"
    problems += pod_spec_problems(pod_spec, path)
    return [prefix + p for p in problems]


def pod_spec_problems(spec: dict[str, Any], path: str) -> list[str]:
    """Server-side rules for a pod spec (also used for Dask worker pods inside a DaskCluster resource)."""
    problems: list[str] = []
    if spec.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        problems.append(f"{path}.restartPolicy: expected Always, OnFailure or Never, found {spec['restartPolicy']!r}")
    if spec.get("activeDeadlineSeconds") is not None and spec["activeDeadlineSeconds"] <= 0:
        problems.append(f"{path}.activeDeadlineSeconds: expected > 0")
    for key in ("serviceAccountName",):
        if spec.get(key) and not DNS1123_SUBDOMAIN.match(spec[key]):
            problems.append(f"{path}.{key} {spec[key]!r}: expected a DNS-1123 name")
    for index, secret in enumerate(spec.get("imagePullSecrets") or []):
        if not DNS1123_SUBDOMAIN.match(secret.get("name", "")):
            problems.append(f"{path}.imagePullSecrets[{index}].name {secret.get('name')!r}: expected a DNS-1123 name")
    problems += label_problems(spec.get("nodeSelector"), f"{path}.nodeSelector")
    for index, tol in enumerate(spec.get("tolerations") or []):
        if tol.get("operator") == "Exists" and tol.get("value"):
            problems.append(f"{path}.tolerations[{index}]: operator Exists takes no value")
    volumes = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        if not DNS1123_LABEL.match(volume.get("name", "")) or len(volume["name"]) > 63:
            problems.append(f"{path}.volumes[{index}].name {volume.get('name')!r}: expected a DNS-1123 label")
        volumes.add(volume.get("name"))
    names: set[str] = set()
    for index, container in enumerate(spec.get("containers") or []):
        cpath = f"{path}.containers[{index}]"
        cname = container.get("name", "")
        if not DNS1123_LABEL.match(cname) or len(cname) > 63:
            problems.append(f"{cpath}.name {cname!r}: expected a DNS-1123 label")
        if cname in names:
            problems.append(f"{cpath}.name {cname!r}: used twice")
        names.add(cname)
        image = container.get("image") or ""
        if not image or image != image.strip() or " " in image:
            problems.append(f"{cpath}.image {image!r}: expected an image reference")
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                problems.append(f"{cpath}.volumeMounts: {mount.get('name')!r} names no volume of the pod")
        problems += _resource_problems(container.get("resources") or {}, f"{cpath}.resources")
    if not names:
        problems.append(f"{path}.containers: expected at least one container")
    return problems


def _resource_problems(resources: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for kind in ("requests", "limits"):
        for name, value in (resources.get(kind) or {}).items():
            try:
                parsed[kind][name] = parse_quantity(value)
            except ValueError as exc:
                problems.append(f"{path}.{kind}.{name}: {exc}")
                continue
            if parsed[kind][name] < 0:
                problems.append(f"{path}.{kind}.{name}: expected a quantity >= 0, found {value!r}")
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        extended = name not in STANDARD_RESOURCES and not name.startswith("hugepages-")
        if extended:
            if limit is None:
                problems.append(f"{path}.limits.{name}: an extended resource needs a limit equal to its request")
            elif limit != request:
                problems.append(f"{path}: {name} request {resources['requests'][name]} must equal its limit {resources['limits'][name]}")
            if request != request.to_integral_value():
                problems.append(f"{path}.requests.{name}: an extended resource must be a whole number")
        elif limit is not None and limit < request:
            problems.append(f"{path}: {name} limit {resources['limits'][name]} is below its request {resources['requests'][name]}")
    return problems


def label_problems(labels: dict[str, str] | None, path: str) -> list[str]:
    problems = []
    for key, value in (labels or {}).items():
        for check, item in ((label_key, key), (label_value, value)):
            try:
                check(item)
            except ValueError as exc:
                problems.append(f"{path} {key!r}: {exc}")
    return problems


def raise_if_invalid(body: dict[str, Any], where: str = "") -> None:
    """Refuse (ManifestError, exit 2) a manifest the API server would refuse; schema too when installed."""
    problems = check_manifest(body, where) + schema_problems(body)
    if problems:
        raise ManifestError("Kubernetes would refuse this manifest; nothing was submitted:\n  " + "\n  ".join(problems))


def schema_problems(body: dict[str, Any]) -> list[str]:
    """kubernetes-validate in strict mode (unknown fields are errors) against KUBERNETES_VERSION's schema."""
    try:
        import kubernetes_validate
    except ImportError:  # the `kubernetes` extra is not installed: own checks only
        return []
    try:
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return [f"{body.get('kind')} {body.get('metadata', {}).get('name')}: schema {KUBERNETES_VERSION} (strict): {where}: {exc.message}"]
    return []


def write_manifests(path: Any, bodies: list[dict[str, Any]], description: str) -> None:
    """A YAML stream of manifests with a header saying where they were captured (kubectl reads it as is)."""
    import yaml

    header = "".join(f"# {line}\n" for line in description.splitlines())
    path.write_text(header + yaml.safe_dump_all(bodies, sort_keys=False, width=1000))


def label_safe(text: str) -> str:
    """A run or task id as a label value: disallowed characters become '-', at most 63, alphanumeric ends."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return value.strip("-_.") or "x"


def run_selector(run_id: str) -> str:
    """The label selector of exactly one run's objects (Jobs, Pods, DaskClusters: each carries RUN_LABEL)."""
    return f"{RUN_LABEL}={label_safe(run_id)}"


def ignore_missing(call: Callable[[], Any]) -> None:
    """Deleting something already gone is success (the engine may have cleaned up first)."""
    from kubernetes.client.rest import ApiException

    try:
        call()
    except ApiException as exc:
        if exc.status != 404:
            raise

