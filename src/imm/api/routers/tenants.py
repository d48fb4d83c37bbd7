"""Tenant administration: the platform admin creates and deletes tenants."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from imm.api.deps import Admin, CurrentSettings, DbSession, MemberTenant, Store, nudge
from imm.api.quota import footprints_by_tenant, tenant_usage
from imm.api.registry import forget_tenant_uploads
from imm.api.schemas import CaView, TenantCreate, TenantView
from imm.certs import describe, load_ca_certificate
from imm.config import Settings
from imm.db.tables import Endpoint, Tenant
from imm.domain.errors import Conflict, InvalidInput, NotFound
from imm.domain.names import check_name
from imm.domain.quantities import normalize_quota
from imm.domain.quota import usage

log = logging.getLogger("imm.api.tenants")
router = APIRouter(tags=["tenants"])


def tenant_view(row: Tenant, usage: dict[str, str | int]) -> TenantView:
    ca = describe(row.ca_cert_pem)
    return TenantView(
        name=row.name,
        scope=row.scope,
        cert=row.ca_cert_pem,
        quota=row.quota,
        usage=usage,
        ca=CaView(subject=ca.subject, notAfter=ca.not_after),
        createdAt=row.created_at,
    )


def check_not_reserved(name: str, cfg: Settings) -> None:
    """On a cluster a tenant owns the namespace ``<prefix><name>``: never the platform's."""
    if cfg.runtime != "kubernetes":
        return
    namespace = f"{cfg.k8s_namespace_prefix}{name}"
    if namespace in {cfg.k8s_platform_namespace, cfg.k8s_ingress_namespace}:
        raise InvalidInput(
            f"tenant name {name!r} is reserved: namespace {namespace} is the platform's"
        )


@router.post("/tenants", status_code=201, response_model=TenantView)
def create_tenant(
    body: TenantCreate, db: DbSession, store: Store, cfg: CurrentSettings, _: Admin
) -> TenantView:
    scope = body.scope.strip()
    if not scope or not scope.isprintable():
        raise InvalidInput("scope must be a non-empty group name of printable characters")
    ca = load_ca_certificate(body.cert)
    quota = normalize_quota(body.quota)
    check_not_reserved(body.name, cfg)
    if db.get(Tenant, body.name) is not None:
        raise Conflict(f"tenant {body.name!r} already exists")
    row = Tenant(name=body.name, scope=scope, ca_cert_pem=ca.pem, quota=quota)
    db.add(row)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(f"tenant {body.name!r} already exists") from None
    # The bucket is made inside the DB transaction: if it fails, the row is rolled back;
    # if the commit fails afterwards, the bucket is removed again.
    store.create_bucket(body.name)
    try:
        db.commit()
    except Exception:
        store.delete_bucket(body.name)
        raise
    log.info("tenant %s created (scope %s)", body.name, scope)
    return tenant_view(row, usage([]))


@router.get("/tenants", response_model=list[TenantView])
def list_tenants(db: DbSession, _: Admin) -> list[TenantView]:
    rows = db.scalars(select(Tenant).order_by(Tenant.name)).all()
    footprints = footprints_by_tenant(db)  # one query for every tenant's usage
    return [tenant_view(r, usage(footprints[r.name])) for r in rows]


@router.get("/tenants/{tenant}", response_model=TenantView)
def get_tenant(row: MemberTenant, db: DbSession) -> TenantView:
    return tenant_view(row, tenant_usage(db, row.name))


@router.delete("/tenants/{tenant}", status_code=204)
def delete_tenant(tenant: str, request: Request, db: DbSession, store: Store, _: Admin) -> Response:
    check_name(tenant, "tenant name")
    row = db.get(Tenant, tenant)
    if row is None:
        raise NotFound(f"tenant {tenant!r} does not exist")
    # Endpoints first (the reconciler stops their replicas), then the bucket: if removing
    # it fails, the tenant stays and the delete can be retried.
    db.execute(delete(Endpoint).where(Endpoint.tenant == tenant))
    db.commit()
    nudge(request)
    store.delete_bucket(tenant)
    forget_tenant_uploads(db, tenant)
    db.delete(row)
    db.commit()
    log.info("tenant %s deleted", tenant)
    return Response(status_code=204)
