"""Settings of the kubernetes runtime (``IMM_K8S_*``).

Kept beside the runtime for now so the runtime can land without touching ``imm.config``;
they are meant to move there unchanged (same names, same defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KubernetesSettings(BaseSettings):
    """Where and how tenants and endpoints land on the cluster."""

    model_config = SettingsConfigDict(env_prefix="IMM_K8S_", extra="ignore")

    # Unset: in-cluster service account when running in a pod, else ~/.kube/config.
    kubeconfig: str | None = None
    context: str | None = None
    # A tenant's objects live in the namespace <prefix><tenant>.
    namespace_prefix: str = Field(default="imm-", pattern=r"^[a-z0-9]([-a-z0-9]*)?$")
    # Where the management API runs; holds the platform TLS secret copied into tenants.
    platform_namespace: str = "imm-system"
    model_server_image: str = "imm-model-server:0.1.0"  # point at your registry's copy
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    ingress_class: str = "nginx"
    # Namespace of the ingress-nginx controller: the only source the NetworkPolicy admits.
    ingress_namespace: str = "ingress-nginx"
    # A kubernetes.io/tls Secret in the platform namespace for *.<domain>; copied into each
    # tenant namespace under the same name. Empty: Ingresses name no secret and the
    # controller serves its --default-ssl-certificate.
    tls_secret: str = "imm-tls"
    # A rollout that makes no progress for this long is reported as failed.
    progress_deadline_seconds: int = Field(default=600, ge=30)
    # Seconds the startup probe waits for the model to download, load and warm up.
    startup_seconds: int = Field(default=600, ge=10)
    # A container restarted this often while crash-looping marks the endpoint failed.
    crash_restarts: int = Field(default=3, ge=1)
    # Optional node-local cache size for the model (an emptyDir sizeLimit), e.g. "10Gi".
    cache_size: str | None = None
    request_timeout_seconds: float = Field(default=30.0, gt=0)


@dataclass(frozen=True)
class StoreAccess:
    """What a model server needs to reach the tenant's bucket (from the ``IMM_S3_*`` settings)."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    bucket_prefix: str = "imm-"

    def bucket(self, tenant: str) -> str:
        return f"{self.bucket_prefix}{tenant}"
