"""Platform settings, in one place.

Every setting has an ``IMM_*`` environment variable (the names are a stable contract, see
the design page) and may also come from a TOML file named by ``IMM_SETTINGS_FILE``.
Environment variables win over the file, the file wins over the defaults.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _split_host_port(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what} must look like HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class Settings(BaseSettings):
    """What an operator may set; read once per process."""

    model_config = SettingsConfigDict(env_prefix="IMM_", extra="ignore")

    data_dir: Path = Path("./.imm-data")
    api_listen: str = "127.0.0.1:8000"
    ingress_listen: str = "127.0.0.1:8443"
    domain: str = "imm.localhost"
    database_url: str | None = None
    admin_password: str | None = None
    oidc_issuer: str | None = None
    oidc_client_id: str = "imm-cli"
    oidc_groups_claim: str = "groups"
    oidc_token_ttl: int = Field(default=3600, ge=60, le=86400)
    admin_group: str = "admin"
    public_url: str | None = None
    max_json_body: int = Field(default=1024 * 1024, ge=1024)

    store: Literal["fs", "s3"] = "fs"
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket_prefix: str = "imm-"
    upload_expiry_hours: float = Field(default=24.0, gt=0)
    upload_gc_interval: float = Field(default=600.0, gt=0)  # seconds between expiry sweeps

    runtime: Literal["local", "kubernetes"] = "local"

    # The kubernetes runtime (IMM_K8S_*); imm.runtime.kubernetes.settings reads them.
    # Unset kubeconfig: the pod's service account in a cluster, else ~/.kube/config.
    k8s_kubeconfig: str | None = None
    k8s_context: str | None = None
    # A tenant's objects live in the namespace <prefix><tenant>.
    k8s_namespace_prefix: str = Field(default="imm-", pattern=r"^[a-z0-9]([-a-z0-9]*)?$")
    # Where the management API runs; holds the platform TLS secret copied into tenants.
    k8s_platform_namespace: str = "imm-system"
    k8s_model_server_image: str = "imm-model-server:0.1.0"  # point at your registry's copy
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    k8s_ingress_class: str = "nginx"
    # Namespace of the ingress-nginx controller: the only source the NetworkPolicy admits.
    k8s_ingress_namespace: str = "ingress-nginx"
    # A kubernetes.io/tls Secret in the platform namespace for *.<domain>, copied into each
    # tenant namespace; empty: Ingresses name none and the controller's default one serves.
    k8s_tls_secret: str = "imm-tls"
    # A rollout that makes no progress for this long is reported as failed.
    k8s_progress_deadline_seconds: int = Field(default=600, ge=30)
    # Seconds the startup probe waits for the model to download, load and warm up.
    k8s_startup_seconds: int = Field(default=600, ge=10)
    # A container restarted this often while crash-looping marks the endpoint failed.
    k8s_crash_restarts: int = Field(default=3, ge=1)
    # Optional node-local cache size for the model (an emptyDir sizeLimit), e.g. "10Gi".
    k8s_cache_size: str | None = None
    k8s_request_timeout_seconds: float = Field(default=30.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        settings_file = os.environ.get("IMM_SETTINGS_FILE")
        if settings_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=settings_file))
        return tuple(sources)

    @field_validator("api_listen", "ingress_listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        _split_host_port(value, "a listen address")
        return value

    @field_validator("domain")
    @classmethod
    def _lowercase_domain(cls, value: str) -> str:
        return value.strip().lower().rstrip(".")

    @cached_property
    def api_host_port(self) -> tuple[str, int]:
        return _split_host_port(self.api_listen, "IMM_API_LISTEN")

    @cached_property
    def ingress_host_port(self) -> tuple[str, int]:
        return _split_host_port(self.ingress_listen, "IMM_INGRESS_LISTEN")

    @property
    def api_url(self) -> str:
        """The URL clients use for the API; also the base of the built-in issuer."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = self.api_host_port
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def endpoint_port(self) -> int:
        """The port clients dial: our nginx locally, the cluster's ingress (443) otherwise."""
        return 443 if self.runtime == "kubernetes" else self.ingress_host_port[1]

    @property
    def builtin_issuer_enabled(self) -> bool:
        return not self.oidc_issuer

    @property
    def issuer_url(self) -> str:
        return (self.oidc_issuer or f"{self.api_url}/oidc").rstrip("/")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'imm.db'}"

    @property
    def issuer_dir(self) -> Path:
        return self.data_dir / "oidc"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def uses_s3(self) -> bool:
        """Whether models live in S3: ``IMM_STORE=s3``, or an S3 endpoint set without saying
        ``IMM_STORE`` (issue 3: configuring an endpoint and credentials is enough). The API's
        store and the runtimes' model servers must agree on it."""
        if "store" in self.model_fields_set:
            return self.store == "s3"
        return bool(self.s3_endpoint)

    @property
    def platform_ca_path(self) -> Path:
        """The platform CA that clients verify the local ingress with (``imm certs server-ca``)."""
        return self.data_dir / "pki" / "ca.crt"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
