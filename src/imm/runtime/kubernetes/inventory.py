"""What IMM holds on the cluster: tenant namespaces and endpoint Deployments, by label.

The reconciler removes whatever is listed here but no longer wanted, so a listing must never
claim an object that is not this platform's: besides the labels, an object counts only where
its name is the one this platform's settings derive from those labels (another IMM with
another namespace prefix on the same cluster keeps its own), and objects already being
deleted are left to finish (deleting a terminating namespace again is refused).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from imm.runtime.kubernetes import names
from imm.runtime.kubernetes.apply import ClusterError, api_message

MANAGED = "app.kubernetes.io/managed-by=imm"
TENANT_SELECTOR = f"{MANAGED},{names.TENANT_LABEL}"
ENDPOINT_SELECTOR = (
    f"{MANAGED},app.kubernetes.io/component={names.COMPONENT},"
    f"{names.TENANT_LABEL},{names.ENDPOINT_LABEL}"
)


def _items(what: str, call: Callable[..., Any], selector: str, timeout: float) -> list[dict]:
    """The list's items as plain JSON: only their metadata matters here, and decoding whole
    Deployments into the client's models for that would be wasted work."""
    try:
        response = call(label_selector=selector, _request_timeout=timeout, _preload_content=False)
        try:
            return list(json.loads(response.data).get("items") or [])
        finally:
            response.release_conn()
    except ApiException as exc:
        raise ClusterError(f"list {what}", exc.status, api_message(exc)) from None


def _live_metadata(item: dict[str, Any]) -> dict[str, Any] | None:
    meta = item.get("metadata") or {}
    return None if meta.get("deletionTimestamp") else meta


def tenant_namespaces(
    core: client.CoreV1Api, prefix: str, reserved: set[str], timeout: float
) -> set[str]:
    """Tenant names of this platform's namespaces (never the platform's own namespaces)."""
    tenants: set[str] = set()
    for item in _items("namespaces", core.list_namespace, TENANT_SELECTOR, timeout):
        meta = _live_metadata(item)
        if meta is None:
            continue
        tenant = (meta.get("labels") or {}).get(names.TENANT_LABEL, "")
        name = meta.get("name")
        if tenant and name == names.namespace(prefix, tenant) and name not in reserved:
            tenants.add(tenant)
    return tenants


def endpoint_deployments(
    apps: client.AppsV1Api, prefix: str, reserved: set[str], timeout: float
) -> set[tuple[str, str]]:
    """(tenant, endpoint) of this platform's model-server Deployments, in all namespaces."""
    found: set[tuple[str, str]] = set()
    call = apps.list_deployment_for_all_namespaces
    for item in _items("deployments", call, ENDPOINT_SELECTOR, timeout):
        meta = _live_metadata(item)
        if meta is None:
            continue
        labels = meta.get("labels") or {}
        tenant = labels.get(names.TENANT_LABEL, "")
        endpoint = labels.get(names.ENDPOINT_LABEL, "")
        namespace = meta.get("namespace")
        if (
            tenant
            and endpoint
            and namespace == names.namespace(prefix, tenant)
            and namespace not in reserved
            and meta.get("name") == names.deployment(endpoint)
        ):
            found.add((tenant, endpoint))
    return found
