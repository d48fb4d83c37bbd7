"""The runtime interface: what the reconciler asks of a runtime, in either mode.

The reconciler hands a runtime the whole desired state of one tenant or endpoint (never a
diff), so applying is idempotent and a restart simply applies everything again; the runtime
answers with what it observes, which the reconciler writes back as endpoint status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

EndpointStatus = Literal["running", "pending", "degraded", "failed", "scaled to 0"]


@dataclass(frozen=True)
class TenantSpec:
    name: str
    scope: str
    ca_pem: str
    quota: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointSpec:
    tenant: str
    name: str
    subject_name: str
    model_name: str
    model_version: int
    replicas: int
    resources: dict[str, str] = field(default_factory=dict)
    host: str = ""  # <endpoint>-<tenant>.<domain>

    @property
    def model_path(self) -> str:
        """Where the replica finds the model, relative to the tenant's bucket."""
        return f"{self.model_name}/{self.model_version}"


@dataclass(frozen=True)
class EndpointObservation:
    status: EndpointStatus
    desired_replicas: int
    ready_replicas: int
    updated_replicas: int = 0
    last_error: str | None = None
    limits_enforced: bool | None = None  # None: the runtime cannot tell


class Runtime(Protocol):
    """Implemented by ``runtime.local`` (processes + nginx) and ``runtime.kubernetes``."""

    def start(self) -> None:
        """Called once by ``imm up`` before the reconciler's first pass."""

    def stop(self) -> None:
        """Called once when the platform stops; the local runtime stops its replicas."""

    def apply_tenant(self, spec: TenantSpec) -> None: ...

    def delete_tenant(self, name: str) -> None: ...

    def apply_endpoint(self, spec: EndpointSpec) -> None: ...

    def delete_endpoint(self, tenant: str, name: str) -> None: ...

    def observe_endpoint(self, tenant: str, name: str) -> EndpointObservation | None:
        """None when the runtime holds nothing for the endpoint."""

    def list_endpoints(self) -> set[tuple[str, str]]:
        """(tenant, endpoint) of everything the runtime holds, so the reconciler can remove
        what the database no longer wants (deleted endpoints and tenants)."""

    def list_tenants(self) -> set[str]: ...
