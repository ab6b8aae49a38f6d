"""`portaflow site check` on a Kubernetes site: the profile's namespace, service account, volume claims and node labels
against the API server (through the same client and configuration both engines use).

Each object is read, never changed. A 404 is "wrong" (the profile names what the cluster does not have); a 403 is "could
not check" (many sites let a user read pods but not namespaces or nodes); no configuration or no answer from the API
server makes every item "could not check" with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portaflow.errors import InputError
from portaflow.schedulers.base import PASSED, UNCHECKED, WRONG, SiteFinding
from portaflow.schedulers.kubernetes.manifests import load_config
from portaflow.spec.site import SiteProfile

TIMEOUT_S = 15
"""Seconds each API request may take (`_request_timeout`): a server that does not answer must not hang the check."""


def items(site: SiteProfile, partitions: list[str]) -> list[tuple[str, str, str, Callable[[Any], Any]]]:
    """(what, key, the profile's value, the read that checks it) for each object the profile names."""
    k8s = site.kubernetes
    ns = k8s.namespace
    out: list[tuple[str, str, str, Callable[[Any], Any]]] = [
        (f"namespace {ns}", "kubernetes.namespace", ns, lambda api: api.read_namespace(ns, _request_timeout=TIMEOUT_S))]
    if k8s.service_account:
        sa = k8s.service_account
        out.append((f"service account {sa}", "kubernetes.service_account", sa,
                    lambda api: api.read_namespaced_service_account(sa, ns, _request_timeout=TIMEOUT_S)))
    for index, claim in enumerate(k8s.volume_claims):
        out.append((f"volume claim {claim.claim}", f"kubernetes.volume_claims.{index}.claim", claim.claim,
                    lambda api, c=claim.claim: api.read_namespaced_persistent_volume_claim(c, ns, _request_timeout=TIMEOUT_S)))
    selectors: dict[str, tuple[str, dict[str, str]]] = {}
    for name in partitions:
        pool = k8s.node_pools.get(name)
        if pool and pool.node_selector:
            selectors[f"kubernetes.node_pools.{name}.node_selector"] = (f"nodes of partition {name}", dict(pool.node_selector))
        for model in site.partitions[name].gpu_models:
            if model in k8s.gpu_model_selectors:
                selectors[f"kubernetes.gpu_model_selectors.{model}"] = (f"nodes with GPU model {model}", dict(k8s.gpu_model_selectors[model]))
    for key, (what, labels) in selectors.items():
        text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        out.append((f"{what} ({text})", key, text, lambda api, t=text: _nodes(api, t)))
    return out


def _nodes(api: Any, selector: str) -> Any:
    """The nodes with these labels; an empty list is the profile being wrong (raised as a 404 would be)."""
    found = api.list_node(label_selector=selector, _request_timeout=TIMEOUT_S)
    if not found.items:
        raise LookupError("no node has these labels")
    return found


def compare_profile(site: SiteProfile, partitions: list[str]) -> list[SiteFinding]:
    """Each object the profile names, read from the API server: passed, wrong (missing) or could not check (why)."""
    wanted = items(site, partitions)
    try:
        load_config()
        from kubernetes import client
        from kubernetes.client.rest import ApiException
    except (InputError, ImportError) as exc:
        why = str(exc) if isinstance(exc, InputError) else "the kubernetes client is not installed (pip install 'portaflow[kubernetes]')"
        return [SiteFinding("the API server answers", UNCHECKED, why=why)] + [
            SiteFinding(what, UNCHECKED, key, value, why="no API server to ask") for what, key, value, _ in wanted]
    try:
        version = client.VersionApi().get_code(_request_timeout=TIMEOUT_S)
    except Exception as exc:  # urllib3's connection errors, the client's ApiException: the server is not there to ask
        why = f"the API server does not answer ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        return [SiteFinding("the API server answers", UNCHECKED, why=why)] + [
            SiteFinding(what, UNCHECKED, key, value, why="the API server does not answer") for what, key, value, _ in wanted]
    found = [SiteFinding("the API server answers", PASSED, site=f"Kubernetes {version.git_version}")]
    api = client.CoreV1Api()
    for what, key, value, read in wanted:
        try:
            read(api)
            found.append(SiteFinding(what, PASSED, key, value, "exists"))
        except LookupError as exc:
            found.append(SiteFinding(what, WRONG, key, value, str(exc)))
        except ApiException as exc:
            if exc.status == 404:
                found.append(SiteFinding(what, WRONG, key, value, f"not found (namespace {site.kubernetes.namespace})"))
            else:
                found.append(SiteFinding(what, UNCHECKED, key, value, why=f"the API server answered {exc.status} {exc.reason}"))
        except Exception as exc:  # a connection lost midway
            found.append(SiteFinding(what, UNCHECKED, key, value, why=f"{type(exc).__name__}: {str(exc)[:200]}"))
    return found
