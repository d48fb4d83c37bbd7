"""The model registry: versions in the store, open uploads in the database.

A version is what the store holds under ``<model>/<version>/``, minus every version that
still has an open upload: so a version appears whole, at the moment its last file completes.
Several files go into one version by starting all their uploads before completing any (the
CLI does); starting a new upload into a version that is already complete is refused.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imm.db.tables import Endpoint, Tenant, Upload
from imm.domain.errors import Conflict, InvalidInput, NotFound
from imm.domain.keys import object_key, version_prefix
from imm.domain.names import check_name, check_version
from imm.store.base import Checksums, ModelStore, ObjectInfo, PartInfo

log = logging.getLogger("imm.registry")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class VersionInfo:
    name: str
    version: int
    size: int = 0
    created_at: datetime = EPOCH
    paths: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return len(self.paths)

    def add(self, obj: ObjectInfo, relative: str) -> None:
        self.size += obj.size
        self.created_at = max(self.created_at, obj.modified)
        self.paths.append(relative)


def _uploads_into(tenant: str, model: str, version: int) -> Select[tuple[Upload]]:
    """The open uploads into one version."""
    return select(Upload).where(
        Upload.tenant == tenant, Upload.model == model, Upload.version == version
    )


def _open_versions(db: Session, tenant: str) -> set[tuple[str, int]]:
    rows = db.execute(select(Upload.model, Upload.version).where(Upload.tenant == tenant))
    return {(m, v) for m, v in rows}


def list_versions(
    db: Session, store: ModelStore, tenant: str, model: str | None = None
) -> list[VersionInfo]:
    """Complete versions, sorted by model and version."""
    prefix = f"{check_name(model, 'model name')}/" if model else ""
    hidden = _open_versions(db, tenant)
    versions: dict[tuple[str, int], VersionInfo] = {}
    for obj in store.list_objects(tenant, prefix):
        name, _, rest = obj.key.partition("/")
        version_text, _, relative = rest.partition("/")
        if not version_text.isdigit() or not relative or version_text.startswith("0"):
            continue  # not laid out as <model>/<version>/...: not a servable version
        ident = (name, int(version_text))
        if ident in hidden:
            continue
        versions.setdefault(ident, VersionInfo(*ident)).add(obj, relative)
    return [versions[k] for k in sorted(versions)]


def version_exists(db: Session, store: ModelStore, tenant: str, model: str, version: int) -> bool:
    """True only for a complete version (no upload into it still open)."""
    prefix = version_prefix(model, version)
    if db.scalar(select(_uploads_into(tenant, model, version).exists())):
        return False
    return next(iter(store.list_objects(tenant, prefix)), None) is not None


def start_upload(
    db: Session,
    store: ModelStore,
    tenant: Tenant,
    model: str,
    version: int,
    file_name: str,
    key: str | None,
    part_size: int | None = None,
) -> Upload:
    okey = object_key(model, version, file_name, key)
    open_here = db.scalars(_uploads_into(tenant.name, model, version)).all()
    if any(u.object_key == okey for u in open_here):
        raise Conflict(f"an upload of {okey!r} is already open; resume or abort it")
    stored = {o.key for o in store.list_objects(tenant.name, version_prefix(model, version))}
    if stored and not open_here:
        raise Conflict(
            f"version {version} of model {model!r} already exists; delete it before uploading again"
        )
    if okey in stored:
        raise Conflict(f"{okey!r} has already been uploaded into this version")
    store_id = store.start_upload(tenant.name, okey, part_size=part_size)
    row = Upload(
        id=secrets.token_urlsafe(24),
        tenant=tenant.name,
        model=model,
        version=version,
        file_name=file_name,
        key=key or "",
        object_key=okey,
        store_upload_id=store_id,
    )
    db.add(row)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        store.abort_upload(tenant.name, okey, store_id)
        raise Conflict(f"an upload of {okey!r} is already open; resume or abort it") from None
    log.info("upload %s started: %s/%s", row.id, tenant.name, okey)
    return row


def get_upload(db: Session, tenant: str, upload_id: str) -> Upload:
    if not upload_id or len(upload_id) > 64:
        raise InvalidInput("uploadId is missing or malformed")
    row = db.get(Upload, upload_id)
    if row is None or row.tenant != tenant:
        raise NotFound(f"no open upload {upload_id!r} in tenant {tenant!r}")
    return row


def put_part(
    store: ModelStore,
    upload: Upload,
    number: int,
    chunks: Iterable[bytes],
    size: int | None,
    checksums: Checksums,
) -> PartInfo:
    return store.put_part(
        upload.tenant,
        upload.object_key,
        upload.store_upload_id,
        number,
        chunks,
        size=size,
        checksums=checksums,
    )


def list_parts(store: ModelStore, upload: Upload) -> list[PartInfo]:
    return store.list_parts(upload.tenant, upload.object_key, upload.store_upload_id)


def complete_upload(
    db: Session, store: ModelStore, upload: Upload, parts: list[tuple[int, str]]
) -> ObjectInfo:
    """The store checks the list (order, ETags, part sizes) before the object appears."""
    info = store.complete_upload(upload.tenant, upload.object_key, upload.store_upload_id, parts)
    db.delete(upload)
    db.commit()
    log.info("upload %s completed: %s/%s", upload.id, upload.tenant, upload.object_key)
    return info


def abort_upload(db: Session, store: ModelStore, upload: Upload) -> None:
    with suppress(NotFound):  # already gone from the store: only the bookkeeping is left
        store.abort_upload(upload.tenant, upload.object_key, upload.store_upload_id)
    db.delete(upload)
    db.commit()
    log.info("upload %s aborted", upload.id)


def delete_version(db: Session, store: ModelStore, tenant: str, model: str, version: int) -> None:
    """Removes the version's files and any upload still open into it."""
    check_version(version)
    prefix = version_prefix(model, version)
    users = db.scalars(
        select(Endpoint.name).where(
            Endpoint.tenant == tenant,
            Endpoint.model_name == model,
            Endpoint.model_version == version,
        )
    ).all()
    if users:
        raise Conflict(
            f"version {version} of model {model!r} is served by endpoint(s) "
            f"{', '.join(sorted(users))}; update or delete them first"
        )
    open_uploads = db.scalars(_uploads_into(tenant, model, version)).all()
    for upload in open_uploads:
        abort_upload(db, store, upload)
    removed = store.delete_prefix(tenant, prefix)
    if not removed and not open_uploads:
        raise NotFound(f"model {model!r} has no version {version}")
    log.info("deleted %s/%s (%d objects)", tenant, prefix, removed)


def expire_uploads(db: Session, store: ModelStore, max_age: timedelta) -> int:
    """Aborts uploads older than ``max_age``, also those the store holds without a row
    (a crash between starting in the store and recording it). Returns how many."""
    cutoff = datetime.now(UTC) - max_age
    expired = 0
    for upload in db.scalars(select(Upload).where(Upload.created_at < cutoff)).all():
        abort_upload(db, store, upload)
        expired += 1
    known = {(u.tenant, u.store_upload_id) for u in db.scalars(select(Upload)).all()}
    for tenant in db.scalars(select(Tenant.name)).all():
        for orphan in store.list_open_uploads(tenant):
            if orphan.initiated < cutoff and (tenant, orphan.upload_id) not in known:
                with suppress(NotFound):
                    store.abort_upload(tenant, orphan.key, orphan.upload_id)
                    expired += 1
    if expired:
        log.info("expired %d abandoned upload(s)", expired)
    return expired


def forget_tenant_uploads(db: Session, tenant: str) -> None:
    db.execute(delete(Upload).where(Upload.tenant == tenant))
