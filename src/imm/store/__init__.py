"""Model store: one interface, filesystem and S3 backends.

``open_store(settings)`` picks the backend; callers depend on ``ModelStore`` only, and the
S3 backend's boto3 import happens only when it is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imm.store.base import ModelStore, ObjectInfo, ObjectReader, OpenUpload, PartInfo

if TYPE_CHECKING:
    from imm.config import Settings

__all__ = ["ModelStore", "ObjectInfo", "ObjectReader", "OpenUpload", "PartInfo", "open_store"]


def open_store(settings: Settings) -> ModelStore:
    """The store the settings describe; ``fs`` lives in ``<data dir>/store``.

    Setting an S3 endpoint without saying ``IMM_STORE`` switches to S3 (issue 3: configuring
    an endpoint and credentials is enough). Without keys, boto3's own credential chain
    applies (environment, instance role).
    """
    if settings.uses_s3:
        from imm.store.s3 import S3Store

        return S3Store(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
            bucket_prefix=settings.s3_bucket_prefix,
            spool_dir=settings.data_dir / "spool",
        )
    from imm.store.fs import FilesystemStore

    return FilesystemStore(settings.store_dir)
