"""What a client needs to log in, and who it is once it has."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from imm.api.deps import CurrentPrincipal, CurrentSettings, DbSession, is_admin
from imm.api.schemas import AuthConfig, WhoAmI
from imm.db.tables import Tenant

router = APIRouter(tags=["auth"])


@router.get("/auth/config", response_model=AuthConfig)
def auth_config(cfg: CurrentSettings) -> AuthConfig:
    return AuthConfig(
        issuer=cfg.issuer_url,
        clientId=cfg.oidc_client_id,
        groupsClaim=cfg.oidc_groups_claim,
        builtinIssuer=cfg.builtin_issuer_enabled,
    )


@router.get("/auth/whoami", response_model=WhoAmI)
def whoami(who: CurrentPrincipal, cfg: CurrentSettings, db: DbSession) -> WhoAmI:
    admin = is_admin(who, cfg)
    query = select(Tenant.name).order_by(Tenant.name)
    if not admin:
        query = query.where(Tenant.scope.in_(who.groups or {""}))
    return WhoAmI(
        subject=who.subject,
        username=who.username,
        email=who.email,
        groups=sorted(who.groups),
        admin=admin,
        tenants=list(db.scalars(query)),
    )


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}
