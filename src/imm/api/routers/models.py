"""Model versions of a tenant: list, view, delete."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from imm.api import registry
from imm.api.deps import DbSession, MemberTenant, Store
from imm.api.schemas import ModelVersionDetail, ModelVersionView, ModelView
from imm.domain.errors import NotFound
from imm.domain.names import check_name, check_version

router = APIRouter(tags=["models"])


@router.get("/tenants/{tenant}/models", response_model=list[ModelVersionView])
def list_models(tenant: MemberTenant, db: DbSession, store: Store) -> list[ModelVersionView]:
    return [
        ModelVersionView(
            name=v.name, version=v.version, size=v.size, files=v.files, createdAt=v.created_at
        )
        for v in registry.list_versions(db, store, tenant.name)
    ]


@router.get("/tenants/{tenant}/models/{model}", response_model=ModelView)
def get_model(tenant: MemberTenant, model: str, db: DbSession, store: Store) -> ModelView:
    check_name(model, "model name")
    versions = registry.list_versions(db, store, tenant.name, model)
    if not versions:
        raise NotFound(f"model {model!r} has no complete version in tenant {tenant.name!r}")
    return ModelView(
        name=model,
        versions=[
            ModelVersionDetail(
                name=v.name,
                version=v.version,
                size=v.size,
                files=v.files,
                createdAt=v.created_at,
                paths=sorted(v.paths),
            )
            for v in versions
        ],
    )


@router.delete("/tenants/{tenant}/models/{model}/versions/{version}", status_code=204)
def delete_version(
    tenant: MemberTenant,
    model: str,
    db: DbSession,
    store: Store,
    version: int = Path(ge=1),
) -> Response:
    check_name(model, "model name")
    check_version(version)
    registry.delete_version(db, store, tenant.name, model, version)
    return Response(status_code=204)
