"""The model store contract: what the API, the serving process and the tests rely on.

One bucket per tenant; object keys are ``<model>/<version>/<key?>/<file>``. An object becomes
visible only when its multipart upload completes, so a reader never sees half a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str  # hex MD5 of the part, in double quotes as S3 writes it


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime
    etag: str


class ModelStore(Protocol):
    """Backends: ``FilesystemStore`` (default) and ``S3Store``; both pass tests/store."""

    def create_bucket(self, tenant: str) -> None:
        """Idempotent: creating an existing bucket is not an error."""

    def delete_bucket(self, tenant: str) -> None:
        """Removes every object and open upload of the tenant, then the bucket; idempotent."""

    def bucket_exists(self, tenant: str) -> bool: ...

    def start_upload(self, tenant: str, key: str) -> str:
        """Returns the backend's upload id."""

    def put_part(
        self,
        tenant: str,
        key: str,
        upload_id: str,
        number: int,
        chunks: Iterable[bytes],
        size: int | None = None,
        md5_b64: str | None = None,
        sha256_b64: str | None = None,
    ) -> PartInfo:
        """Streams one part; a checksum mismatch raises InvalidInput and keeps nothing."""

    def list_parts(self, tenant: str, key: str, upload_id: str) -> list[PartInfo]: ...

    def complete_upload(
        self, tenant: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """``parts`` are (number, etag) in ascending order; the object appears atomically."""

    def abort_upload(self, tenant: str, key: str, upload_id: str) -> None: ...

    def list_objects(self, tenant: str, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        """Deletes every object whose key starts with ``prefix``; returns how many."""

    def download_prefix(self, tenant: str, prefix: str, dest: Path) -> list[Path]:
        """Copies every object under ``prefix`` to ``dest`` keeping relative paths."""
