"""Request and response bodies; their JSON names are the API contract (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from imm.domain.names import NAME_MAX, NAME_MIN, NAME_RE, check_name

ResourceName = Annotated[
    str,
    # Documented in the schema, enforced by check_name so the message is the domain's own.
    Field(
        json_schema_extra={"pattern": NAME_RE.pattern, "minLength": NAME_MIN, "maxLength": NAME_MAX}
    ),
    AfterValidator(check_name),
]
QuotaValue = str | int


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TenantCreate(Strict):
    name: ResourceName
    cert: str = Field(description="the tenant CA certificate: PEM text, or base64 of PEM")
    scope: str = Field(
        min_length=1,
        max_length=255,
        description="identity-provider group whose members may use the tenant",
    )
    quota: dict[str, QuotaValue] = Field(
        default_factory=dict,
        description="requests.cpu, limits.cpu, requests.memory, limits.memory, maxEndpoints",
    )


class CaView(BaseModel):
    subject: str
    notAfter: datetime


class TenantView(BaseModel):
    name: str
    scope: str
    cert: str
    quota: dict[str, QuotaValue]
    usage: dict[str, QuotaValue]
    ca: CaView
    createdAt: datetime


class AuthConfig(BaseModel):
    issuer: str
    clientId: str
    groupsClaim: str
    builtinIssuer: bool


class WhoAmI(BaseModel):
    subject: str
    username: str
    email: str | None
    groups: list[str]
    admin: bool
    tenants: list[str]
