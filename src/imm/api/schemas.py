"""Request and response bodies; their JSON names are the API contract (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from imm.domain.multipart import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_NUMBER, MIN_PART_SIZE
from imm.domain.names import NAME_MAX, NAME_MIN, NAME_RE, VERSION_MAX, check_name

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


class UploadStart(Strict):
    modelName: ResourceName
    modelVersion: int = Field(ge=1, le=VERSION_MAX, description="a positive integer")
    fileName: str = Field(description="the file's name, without folders")
    key: str | None = Field(
        default=None, description="optional folder path inside the version, e.g. 'variables'"
    )
    partSize: int | None = Field(
        default=None,
        ge=MIN_PART_SIZE,
        le=MAX_PART_SIZE,
        description="the size of every part but the last, if known: lets the store write "
        "parts in place and complete without copying",
    )


class UploadStarted(BaseModel):
    uploadId: str


class PartReceived(BaseModel):
    ETag: str
    partNumber: int


class PartRef(Strict):
    PartNumber: int = Field(ge=MIN_PART_NUMBER, le=MAX_PART_NUMBER)
    ETag: str = Field(min_length=1, max_length=128)


class UploadDone(Strict):
    uploadId: str = Field(min_length=1, max_length=64)
    parts: list[PartRef] = Field(min_length=1, max_length=MAX_PART_NUMBER)


class UploadAbort(Strict):
    uploadId: str = Field(min_length=1, max_length=64)


class UploadedObject(BaseModel):
    modelName: str
    modelVersion: int
    key: str
    size: int
    ETag: str


class PartStatus(BaseModel):
    partNumber: int
    size: int
    ETag: str


class UploadStatus(BaseModel):
    uploadId: str
    modelName: str
    modelVersion: int
    fileName: str
    key: str | None
    createdAt: datetime
    expiresAt: datetime
    parts: list[PartStatus]


class ModelVersionView(BaseModel):
    name: str
    version: int
    size: int
    files: int
    createdAt: datetime


class ModelVersionDetail(ModelVersionView):
    paths: list[str]


class ModelView(BaseModel):
    name: str
    versions: list[ModelVersionDetail]


Resources = dict[str, str | int | float]


class EndpointCreate(Strict):
    endpointName: ResourceName
    subjectName: str = Field(description="the client certificate CN this endpoint admits")
    modelName: ResourceName
    modelVersion: int = Field(ge=1, le=VERSION_MAX)
    replicas: int = Field(default=1, ge=0, le=100)
    resources: Resources = Field(
        default_factory=dict,
        description="per replica: requests.cpu, limits.cpu, requests.memory, limits.memory",
    )


class EndpointUpdate(Strict):
    modelName: ResourceName | None = None
    modelVersion: int | None = Field(default=None, ge=1, le=VERSION_MAX)
    subjectName: str | None = None
    resources: Resources | None = None


class ReplicasUpdate(Strict):
    replicas: int = Field(ge=0, le=100)


class EndpointSummary(BaseModel):
    name: str
    url: str
    status: str


class EndpointView(EndpointSummary):
    tenant: str
    port: int
    modelName: str
    modelVersion: int
    modelPath: str
    subjectName: str
    resources: dict[str, str]
    replicas: int
    readyReplicas: int
    updatedReplicas: int
    lastError: str | None
    limitsEnforced: bool | None = Field(
        description="whether limits.* are enforced on each replica (cgroups), or only accounted"
    )
    generation: int
    observedGeneration: int
    createdAt: datetime
    updatedAt: datetime
