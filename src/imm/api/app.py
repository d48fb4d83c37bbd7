"""The management API application: routers, error format, limits, and shared state."""

from __future__ import annotations

from fastapi import FastAPI

from imm import __version__
from imm.api import problems
from imm.api.limits import BodyLimitMiddleware
from imm.api.routers import auth, endpoints, ingress, models, tenants, uploads
from imm.auth.issuer.routes import issuer_router
from imm.auth.issuer.service import BuiltinIssuer
from imm.auth.verifier import TokenVerifier, discovery_jwks_source
from imm.config import Settings
from imm.db.engine import Database
from imm.store.base import ModelStore

DESCRIPTION = """Multi-tenant model registry and inference endpoints.

Authenticate with `Authorization: Bearer <OIDC ID token>`. Errors are
`application/problem+json`."""


def builtin_issuer(settings: Settings) -> BuiltinIssuer:
    return BuiltinIssuer(
        issuer=settings.issuer_url,
        client_id=settings.oidc_client_id,
        directory=settings.issuer_dir,
        token_ttl=settings.oidc_token_ttl,
    )


def create_app(settings: Settings, db: Database, store: ModelStore) -> FastAPI:
    """Build the app around already-opened resources; ``imm up`` owns their lifecycle."""
    app = FastAPI(
        title="IMM management API",
        version=__version__,
        description=DESCRIPTION,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.store = store

    if settings.builtin_issuer_enabled:
        issuer = builtin_issuer(settings)
        app.state.issuer = issuer
        jwks_source = issuer.key.jwks  # same process: no HTTP round trip to ourselves
        app.include_router(issuer_router(issuer))
    else:
        app.state.issuer = None
        jwks_source = discovery_jwks_source(settings.issuer_url)
    app.state.verifier = TokenVerifier(
        issuer=settings.issuer_url,
        audience=settings.oidc_client_id,
        jwks_source=jwks_source,
        groups_claim=settings.oidc_groups_claim,
    )

    app.include_router(auth.router)
    app.include_router(tenants.router)
    app.include_router(models.router)
    app.include_router(uploads.router)
    app.include_router(endpoints.router)
    app.include_router(ingress.router)
    problems.install(app)
    app.add_middleware(BodyLimitMiddleware, max_body=settings.max_json_body)
    return app
