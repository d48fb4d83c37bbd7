"""Object names and labels for tenants and endpoints on the cluster.

Tenant and endpoint names are DNS labels of 3..63 characters, but a prefixed namespace can
outgrow 63 and a Service name must start with a letter (RFC 1035), so those names are
derived here, deterministically, with a short hash when they must be shortened.
"""

from __future__ import annotations

import hashlib

LABEL_PREFIX = "imm.io"
TENANT_LABEL = f"{LABEL_PREFIX}/tenant"
ENDPOINT_LABEL = f"{LABEL_PREFIX}/endpoint"
MODEL_LABEL = f"{LABEL_PREFIX}/model"
VERSION_LABEL = f"{LABEL_PREFIX}/model-version"
COMPONENT = "model-server"
MANAGED_BY = {"app.kubernetes.io/managed-by": "imm", "app.kubernetes.io/part-of": "imm"}

FIELD_MANAGER = "imm"
QUOTA_NAME = "imm-quota"
CA_SECRET = "imm-tenant-ca"
STORE_SECRET = "imm-store"
NETWORK_POLICY = "imm-model-servers"
CONTAINER = "model-server"
GRPC_PORT = 8500
DNS_LABEL_MAX = 63


def _fit(name: str, limit: int = DNS_LABEL_MAX) -> str:
    """``name`` if short enough, else a prefix of it plus 8 hex digits of its hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def namespace(prefix: str, tenant: str) -> str:
    return _fit(f"{prefix}{tenant}")


def deployment(endpoint: str) -> str:
    return endpoint


def service(endpoint: str) -> str:
    """Service names follow RFC 1035 (leading letter), unlike endpoint names."""
    return _fit(endpoint if endpoint[0].isalpha() else f"ep-{endpoint}")


def ingress(endpoint: str) -> str:
    return endpoint


def selector(tenant: str, endpoint: str) -> dict[str, str]:
    """The labels that tie an endpoint's pods to its Deployment and Service; never change."""
    return {TENANT_LABEL: tenant, ENDPOINT_LABEL: endpoint}


def tenant_labels(tenant: str) -> dict[str, str]:
    return {**MANAGED_BY, TENANT_LABEL: tenant}


def endpoint_labels(tenant: str, endpoint: str) -> dict[str, str]:
    return {
        **MANAGED_BY,
        **selector(tenant, endpoint),
        "app.kubernetes.io/component": COMPONENT,
    }
