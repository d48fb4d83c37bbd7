"""The tenant's endpoints as the quota sees them, for the routers that check or report it."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from imm.db.tables import Endpoint, Tenant
from imm.domain.quota import Footprint, usage


def footprint(row: Endpoint) -> Footprint:
    return Footprint(row.name, row.replicas, row.resources)


def tenant_endpoints(db: Session, tenant: str) -> list[Endpoint]:
    return list(db.scalars(select(Endpoint).where(Endpoint.tenant == tenant)).all())


def tenant_usage(db: Session, tenant: str) -> dict[str, str | int]:
    return usage(map(footprint, tenant_endpoints(db, tenant)))


def footprints_by_tenant(db: Session) -> defaultdict[str, list[Footprint]]:
    """Every endpoint's footprint, by tenant, from one query."""
    found: defaultdict[str, list[Footprint]] = defaultdict(list)
    for row in db.scalars(select(Endpoint)):
        found[row.tenant].append(footprint(row))
    return found


def locked_tenant_endpoints(db: Session, tenant: Tenant) -> dict[str, Endpoint]:
    """The tenant's endpoints by name, read after locking the tenant row (PostgreSQL), so
    two concurrent changes cannot both fit the quota on their own and exceed it together,
    nor both build on the same generation. Rows (and the tenant's quota) already in the
    session are refreshed from the database: what was read before the lock may be stale."""
    db.scalars(  # rows are loaded (and ``tenant`` refreshed) only when fetched
        select(Tenant)
        .where(Tenant.name == tenant.name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    rows = db.scalars(
        select(Endpoint)
        .where(Endpoint.tenant == tenant.name)
        .execution_options(populate_existing=True)
    )
    return {row.name: row for row in rows}
