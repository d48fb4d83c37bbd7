"""Request dependencies: who is asking, and may they touch this tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.orm import Session

from imm.auth.verifier import Principal, TokenVerifier
from imm.config import Settings
from imm.db.engine import Database
from imm.db.tables import Tenant
from imm.domain.errors import Forbidden, NotFound, Unauthenticated
from imm.domain.names import check_name
from imm.store.base import ModelStore


def settings(request: Request) -> Settings:
    return request.app.state.settings


def session(request: Request) -> Iterator[Session]:
    """Handlers commit explicitly; anything uncommitted is rolled back when the request ends."""
    db: Database = request.app.state.db
    with db.open() as s:
        yield s


def principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    if not authorization:
        raise Unauthenticated("missing 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must use the Bearer scheme")
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(token.strip())


def is_admin(who: Principal, cfg: Settings) -> bool:
    return cfg.admin_group in who.groups


def admin(
    who: Annotated[Principal, Depends(principal)],
    cfg: Annotated[Settings, Depends(settings)],
) -> Principal:
    if not is_admin(who, cfg):
        raise Forbidden(f"only members of the {cfg.admin_group!r} group may do this")
    return who


def authorize_tenant(db: Session, who: Principal, cfg: Settings, tenant: str) -> Tenant:
    """The tenant row, if the caller is an admin or in the tenant's scope group.

    A caller who may not use the tenant gets 403 whether or not it exists, so tenant names
    do not leak to outsiders.
    """
    check_name(tenant, "tenant name")
    row = db.get(Tenant, tenant)
    if is_admin(who, cfg):
        if row is None:
            raise NotFound(f"tenant {tenant!r} does not exist")
        return row
    if row is None or row.scope not in who.groups:
        raise Forbidden(f"you are not a member of tenant {tenant!r}")
    return row


def tenant_for(
    tenant: Annotated[str, Path(description="tenant name")],
    who: Annotated[Principal, Depends(principal)],
    cfg: Annotated[Settings, Depends(settings)],
    db: Annotated[Session, Depends(session)],
) -> Tenant:
    return authorize_tenant(db, who, cfg, tenant)


def store(request: Request) -> ModelStore:
    return request.app.state.store


def nudge(request: Request) -> None:
    """Tells the reconciler (when this process runs one) that desired state changed."""
    reconciler = getattr(request.app.state, "reconciler", None)
    if reconciler is not None:
        reconciler.nudge()


CurrentPrincipal = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
DbSession = Annotated[Session, Depends(session)]
CurrentSettings = Annotated[Settings, Depends(settings)]
MemberTenant = Annotated[Tenant, Depends(tenant_for)]
Store = Annotated[ModelStore, Depends(store)]
