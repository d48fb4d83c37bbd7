"""The kubernetes runtime's own view of its settings.

The settings themselves live in ``imm.config.Settings`` (``k8s_*`` fields, environment
``IMM_K8S_*``), where the operator's input is validated and where the defaults are defined;
this view drops the prefix so the renderers read ``settings.ingress_class``, and takes its
defaults from there so that tests may build one from a few fields without a drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from imm.config import Settings

PREFIX = "k8s_"


def _default(name: str) -> Any:
    return Settings.model_fields[PREFIX + name].default


class KubernetesSettings(BaseModel):
    """Where and how tenants and endpoints land on the cluster (see ``imm.config``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kubeconfig: str | None = _default("kubeconfig")
    context: str | None = _default("context")
    namespace_prefix: str = _default("namespace_prefix")
    platform_namespace: str = _default("platform_namespace")
    model_server_image: str = _default("model_server_image")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = _default("image_pull_policy")
    ingress_class: str = _default("ingress_class")
    ingress_namespace: str = _default("ingress_namespace")
    tls_secret: str = _default("tls_secret")
    progress_deadline_seconds: int = _default("progress_deadline_seconds")
    startup_seconds: int = _default("startup_seconds")
    crash_restarts: int = _default("crash_restarts")
    cache_size: str | None = _default("cache_size")
    request_timeout_seconds: float = _default("request_timeout_seconds")

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesSettings:
        return cls(**{name: getattr(settings, PREFIX + name) for name in cls.model_fields})


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
