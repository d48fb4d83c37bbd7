"""Inference endpoints: the API records desired state and nudges the reconciler.

No handler waits for a replica: status comes back from the reconciler as it observes the
runtime, so create, update, scale and delete answer at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from imm.api import registry
from imm.api.deps import CurrentSettings, DbSession, MemberTenant, Store, nudge
from imm.api.quota import footprint, locked_tenant_endpoints, tenant_endpoints
from imm.api.schemas import (
    EndpointCreate,
    EndpointSummary,
    EndpointUpdate,
    EndpointView,
    ReplicasUpdate,
)
from imm.config import Settings
from imm.db.tables import Endpoint, Tenant, utcnow
from imm.domain.errors import Conflict, NotFound
from imm.domain.names import check_name, check_subject_name, endpoint_host, host_label
from imm.domain.quantities import normalize_resources
from imm.domain.quota import Footprint, check_fits, require_stated_keys
from imm.store.base import ModelStore

router = APIRouter(tags=["endpoints"])


def view(row: Endpoint, settings: Settings) -> EndpointView:
    return EndpointView(
        name=row.name,
        tenant=row.tenant,
        url=endpoint_host(row.name, row.tenant, settings.domain),
        port=settings.endpoint_port,
        status=row.status,
        modelName=row.model_name,
        modelVersion=row.model_version,
        modelPath=f"{row.tenant}/{row.model_name}/{row.model_version}",
        subjectName=row.subject_name,
        resources=row.resources,
        replicas=row.replicas,
        readyReplicas=row.ready_replicas,
        updatedReplicas=row.updated_replicas,
        lastError=row.last_error,
        limitsEnforced=row.limits_enforced,
        generation=row.generation,
        observedGeneration=row.observed_generation,
        createdAt=row.created_at,
        updatedAt=row.updated_at,
    )


def _missing(tenant: str, name: str) -> NotFound:
    return NotFound(f"endpoint {name!r} does not exist in tenant {tenant!r}")


def get_endpoint(db: DbSession, tenant: str, name: str) -> Endpoint:
    check_name(name, "endpoint name")
    row = db.get(Endpoint, (tenant, name))
    if row is None:
        raise _missing(tenant, name)
    return row


def _locked_endpoint(db: DbSession, tenant: Tenant, name: str) -> tuple[Endpoint, list[Endpoint]]:
    """The endpoint and the tenant's other endpoints, read under the tenant lock: a change
    computed from them (quota, generation) cannot race another one."""
    check_name(name, "endpoint name")
    others = locked_tenant_endpoints(db, tenant)
    row = others.pop(name, None)
    if row is None:
        raise _missing(tenant.name, name)
    return row, list(others.values())


def require_model(db: DbSession, store: ModelStore, tenant: str, model: str, version: int) -> None:
    if not registry.version_exists(db, store, tenant, model, version):
        raise NotFound(f"model {model!r} has no complete version {version} in tenant {tenant!r}")


@router.post("/tenants/{tenant}/endpoints", status_code=201, response_model=EndpointView)
def create_endpoint(
    body: EndpointCreate,
    request: Request,
    tenant: MemberTenant,
    db: DbSession,
    store: Store,
    cfg: CurrentSettings,
) -> EndpointView:
    check_subject_name(body.subjectName)
    label = host_label(body.endpointName, tenant.name)
    resources = normalize_resources(body.resources)
    require_stated_keys(tenant.quota, resources)
    require_model(db, store, tenant.name, body.modelName, body.modelVersion)
    others = locked_tenant_endpoints(db, tenant)
    if body.endpointName in others:
        raise Conflict(f"endpoint {body.endpointName!r} already exists in tenant {tenant.name!r}")
    taken = db.scalar(select(Endpoint.name).where(Endpoint.name + "-" + Endpoint.tenant == label))
    if taken is not None:  # e.g. endpoint b-c of tenant a and endpoint b of tenant c-a
        raise Conflict(f"host {endpoint_host(body.endpointName, tenant.name, cfg.domain)} is taken")
    proposed = Footprint(body.endpointName, body.replicas, resources)
    check_fits(tenant.quota, map(footprint, others.values()), proposed, new_endpoint=True)
    row = Endpoint(
        tenant=tenant.name,
        name=body.endpointName,
        subject_name=body.subjectName,
        model_name=body.modelName,
        model_version=body.modelVersion,
        replicas=body.replicas,
        resources=resources,
        generation=1,
        status="scaled to 0" if body.replicas == 0 else "pending",
        ready_replicas=0,
        updated_replicas=0,
        observed_generation=0,
    )
    db.add(row)
    db.commit()
    nudge(request)
    return view(row, cfg)


@router.get("/tenants/{tenant}/endpoints", response_model=list[EndpointSummary])
def list_endpoints(
    tenant: MemberTenant, db: DbSession, cfg: CurrentSettings
) -> list[EndpointSummary]:
    rows = sorted(tenant_endpoints(db, tenant.name), key=lambda r: r.name)
    return [
        EndpointSummary(
            name=r.name, url=endpoint_host(r.name, r.tenant, cfg.domain), status=r.status
        )
        for r in rows
    ]


@router.get("/tenants/{tenant}/endpoints/{endpoint}", response_model=EndpointView)
def get_endpoint_view(
    tenant: MemberTenant, endpoint: str, db: DbSession, cfg: CurrentSettings
) -> EndpointView:
    return view(get_endpoint(db, tenant.name, endpoint), cfg)


@router.patch("/tenants/{tenant}/endpoints/{endpoint}", response_model=EndpointView)
def update_endpoint(
    body: EndpointUpdate,
    endpoint: str,
    request: Request,
    tenant: MemberTenant,
    db: DbSession,
    store: Store,
    cfg: CurrentSettings,
) -> EndpointView:
    """Changing the model or resources rolls the replicas one by one; the subject only
    changes the ingress."""
    row, others = _locked_endpoint(db, tenant, endpoint)
    subject = check_subject_name(body.subjectName) if body.subjectName is not None else None
    model = body.modelName or row.model_name
    version = body.modelVersion or row.model_version
    resources = normalize_resources(body.resources) if body.resources is not None else row.resources
    require_stated_keys(tenant.quota, resources)
    if (model, version) != (row.model_name, row.model_version):
        require_model(db, store, tenant.name, model, version)
    rolls = (model, version, resources) != (row.model_name, row.model_version, row.resources)
    proposed = Footprint(row.name, row.replicas, resources)
    check_fits(tenant.quota, map(footprint, others), proposed,
               surge_from=footprint(row) if rolls else None)  # fmt: skip
    changed = rolls or (subject is not None and subject != row.subject_name)
    if changed:
        row.model_name, row.model_version, row.resources = model, version, resources
        row.subject_name = subject or row.subject_name
        row.generation += 1
        row.updated_at = utcnow()
        db.commit()
        nudge(request)
    return view(row, cfg)


@router.patch("/tenants/{tenant}/endpoints/{endpoint}/replicas", response_model=EndpointView)
def scale_endpoint(
    body: ReplicasUpdate,
    endpoint: str,
    request: Request,
    tenant: MemberTenant,
    db: DbSession,
    cfg: CurrentSettings,
) -> EndpointView:
    row, others = _locked_endpoint(db, tenant, endpoint)
    check_fits(
        tenant.quota, map(footprint, others), Footprint(row.name, body.replicas, row.resources)
    )
    if body.replicas != row.replicas:
        row.replicas = body.replicas
        row.generation += 1
        row.updated_at = utcnow()
        if body.replicas == 0:
            row.status = "scaled to 0"
        elif row.status == "scaled to 0":
            row.status = "pending"
        db.commit()
        nudge(request)
    return view(row, cfg)


@router.delete("/tenants/{tenant}/endpoints/{endpoint}", status_code=204)
def delete_endpoint(
    endpoint: str, request: Request, tenant: MemberTenant, db: DbSession
) -> Response:
    """The row goes at once; the reconciler stops what the runtime still holds for it."""
    row = get_endpoint(db, tenant.name, endpoint)
    db.delete(row)
    db.commit()
    nudge(request)
    return Response(status_code=204)
