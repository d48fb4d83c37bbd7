"""Multipart upload of model files, S3-style: start, parts, done or abort, and resume.

A part is streamed from the socket to the store in blocks of ``BLOCK`` bytes: the API holds
at most a few blocks of it in memory whatever the part size.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request

from imm.api import registry
from imm.api.deps import (
    CurrentPrincipal,
    CurrentSettings,
    DbSession,
    MemberTenant,
    Store,
    authorize_tenant,
)
from imm.api.schemas import (
    PartReceived,
    PartStatus,
    UploadAbort,
    UploadDone,
    UploadedObject,
    UploadStart,
    UploadStarted,
    UploadStatus,
)
from imm.db.engine import Database
from imm.db.tables import Upload
from imm.domain.errors import InvalidInput, TooLarge
from imm.domain.keys import check_file_name, check_key
from imm.store.base import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_NUMBER, Checksums

router = APIRouter(tags=["uploads"])
BLOCK = 1024 * 1024
QUEUED = 4  # blocks read ahead of the store: memory stays at a few MiB per part upload


def _first(group: BaseExceptionGroup) -> BaseException:
    """The error that ended a part upload, out of anyio's exception group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


RAW_BODY = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


@router.post("/tenants/{tenant}/upload/start", response_model=UploadStarted)
def start(body: UploadStart, tenant: MemberTenant, db: DbSession, store: Store) -> UploadStarted:
    check_file_name(body.fileName)
    key = body.key.rstrip("/") if body.key else None
    if key:
        check_key(key, "key")
    row = registry.start_upload(
        db, store, tenant, body.modelName, body.modelVersion, body.fileName, key, body.partSize
    )
    return UploadStarted(uploadId=row.id)


def _part_upload(
    request: Request,
    who: CurrentPrincipal,
    cfg: CurrentSettings,
    tenant: str,
    uploadId: Annotated[str, Query(min_length=1, max_length=64)],
) -> Upload:
    """Resolves the upload with a short-lived session: none is held while a part streams."""
    db: Database = request.app.state.db
    with db.open() as session:
        authorize_tenant(session, who, cfg, tenant)
        return registry.get_upload(session, tenant, uploadId)


@router.put(
    "/tenants/{tenant}/upload",
    response_model=PartReceived,
    openapi_extra={"requestBody": RAW_BODY},
)
async def put_part(
    request: Request,
    upload: Annotated[Upload, Depends(_part_upload)],
    store: Store,
    partNumber: Annotated[int, Query()],
    content_md5: Annotated[str | None, Header()] = None,
    x_amz_checksum_sha256: Annotated[str | None, Header()] = None,
    x_amz_checksum_crc32: Annotated[str | None, Header()] = None,
) -> PartReceived:
    if not MIN_PART_NUMBER <= partNumber <= MAX_PART_NUMBER:
        raise InvalidInput(
            f"partNumber must be {MIN_PART_NUMBER} to {MAX_PART_NUMBER}, got {partNumber}"
        )
    # Content-Length is the transport's, not an API parameter: the server has already checked
    # it is a number (a request whose body disagrees with it never reaches this handler).
    declared = request.headers.get("content-length")
    content_length = int(declared) if declared is not None else None
    if content_length is not None and content_length > MAX_PART_SIZE:
        raise TooLarge(f"a part may hold at most {MAX_PART_SIZE} bytes (5000 MiB)")
    # The event loop keeps reading the socket into a small queue of blocks while a worker
    # thread hashes and writes the previous ones: receiving and storing overlap, and at most
    # QUEUED blocks wait in memory whatever the part size.
    send, receive = anyio.create_memory_object_stream[bytes](max_buffer_size=QUEUED)

    async def pump() -> None:
        async with send:
            pieces: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                pieces.append(chunk)
                size += len(chunk)
                if size >= BLOCK:
                    await send.send(b"".join(pieces))
                    pieces, size = [], 0
            if size:
                await send.send(b"".join(pieces))

    def blocks() -> Iterator[bytes]:
        while True:
            try:
                yield anyio.from_thread.run(receive.receive)
            except anyio.EndOfStream:
                return

    try:
        async with anyio.create_task_group() as group, receive:
            group.start_soon(pump)
            part = await anyio.to_thread.run_sync(
                registry.put_part,
                store,
                upload,
                partNumber,
                blocks(),
                content_length,
                Checksums(
                    md5=content_md5, sha256=x_amz_checksum_sha256, crc32=x_amz_checksum_crc32
                ),
            )
            group.cancel_scope.cancel()  # the store has what it wants (or refused it)
    except BaseExceptionGroup as group_error:
        raise _first(group_error) from None
    return PartReceived(ETag=part.etag, partNumber=part.number)


@router.get("/tenants/{tenant}/upload/{upload_id}", response_model=UploadStatus)
def status(
    tenant: MemberTenant, upload_id: str, db: DbSession, store: Store, cfg: CurrentSettings
) -> UploadStatus:
    upload = registry.get_upload(db, tenant.name, upload_id)
    parts = registry.list_parts(store, upload)
    return UploadStatus(
        uploadId=upload.id,
        modelName=upload.model,
        modelVersion=upload.version,
        fileName=upload.file_name,
        key=upload.key or None,
        createdAt=upload.created_at,
        expiresAt=upload.created_at + timedelta(hours=cfg.upload_expiry_hours),
        parts=[PartStatus(partNumber=p.number, size=p.size, ETag=p.etag) for p in parts],
    )


@router.post("/tenants/{tenant}/upload/done", response_model=UploadedObject)
def done(body: UploadDone, tenant: MemberTenant, db: DbSession, store: Store) -> UploadedObject:
    upload = registry.get_upload(db, tenant.name, body.uploadId)
    parts = [(p.PartNumber, p.ETag) for p in body.parts]
    info = registry.complete_upload(db, store, upload, parts)
    return UploadedObject(
        modelName=upload.model,
        modelVersion=upload.version,
        key=info.key,
        size=info.size,
        ETag=info.etag,
    )


@router.post("/tenants/{tenant}/upload/abort")
def abort(body: UploadAbort, tenant: MemberTenant, db: DbSession, store: Store) -> dict[str, str]:
    upload = registry.get_upload(db, tenant.name, body.uploadId)
    registry.abort_upload(db, store, upload)
    return {"uploadId": body.uploadId, "status": "aborted"}
