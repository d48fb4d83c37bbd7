"""The model store contract: what the API, the serving process and the tests rely on.

One bucket per tenant; object keys are ``<model>/<version>/<key?>/<file>``. An object becomes
visible only when its multipart upload completes, so a reader never sees half a file.

Both backends follow S3's multipart rules so that a client written against one works on the
other: part numbers 1..10000, every part but the last at least 5 MiB, part ETags are the
quoted hex MD5 of the part, a completed object's ETag is the MD5 of the concatenated binary
part MD5s followed by ``-<number of parts>``. A prefix is a plain string prefix, as in S3
(``m/1`` also matches ``m/10/...``; pass ``m/1/`` for one version).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

from imm.domain.multipart import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_NUMBER, MIN_PART_SIZE

__all__ = [
    "MAX_PART_NUMBER",
    "MAX_PART_SIZE",
    "MIN_PART_NUMBER",
    "MIN_PART_SIZE",
    "Checksums",
    "ModelStore",
    "ObjectInfo",
    "ObjectReader",
    "OpenUpload",
    "PartInfo",
]


@dataclass(frozen=True)
class Checksums:
    """What the client says a part hashes to, base64 as in S3's headers; each one given is
    checked. CRC32 is what S3's SDKs send by default: it costs the client a twentieth of
    an MD5, and the ETag's MD5 is then computed once, by the server."""

    md5: str | None = None  # Content-MD5
    sha256: str | None = None  # x-amz-checksum-sha256
    crc32: str | None = None  # x-amz-checksum-crc32: big-endian CRC-32 (zlib's)


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


@dataclass(frozen=True)
class OpenUpload:
    """An upload started and neither completed nor aborted (for resuming and for expiry)."""

    key: str
    upload_id: str
    initiated: datetime  # timezone-aware


class ObjectReader(Protocol):
    """What ``open_object`` returns: a file object, or botocore's streaming body."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> ObjectReader: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ModelStore(Protocol):
    """Backends: ``FilesystemStore`` (default) and ``S3Store``; both pass tests/store.

    Every method validates the tenant (a resource name) and keys (imm.domain.keys) itself,
    so a bad value raises InvalidInput before anything touches storage. Unknown buckets and
    upload ids raise NotFound. Methods are safe to call from several threads at once.
    """

    def create_bucket(self, tenant: str) -> None:
        """Idempotent: creating an existing bucket is not an error."""

    def delete_bucket(self, tenant: str) -> None:
        """Removes every object and open upload of the tenant, then the bucket; idempotent."""

    def bucket_exists(self, tenant: str) -> bool: ...

    def start_upload(self, tenant: str, key: str, part_size: int | None = None) -> str:
        """Returns the backend's upload id (opaque, URL-safe). ``part_size`` is an optional
        hint, the size of every part but the last: it lets the filesystem store write
        parts straight to their final place (no copy on completion). Parts of other sizes
        are still accepted."""

    def put_part(
        self,
        tenant: str,
        key: str,
        upload_id: str,
        number: int,
        chunks: Iterable[bytes],
        size: int | None = None,
        checksums: Checksums = Checksums(),
    ) -> PartInfo:
        """Streams one part, holding at most a chunk in memory; replaces an earlier part
        with the same number. A checksum mismatch, or a body whose length differs from
        ``size``, raises InvalidInput and keeps nothing; more than MAX_PART_SIZE bytes raise
        TooLarge."""

    def list_parts(self, tenant: str, key: str, upload_id: str) -> list[PartInfo]:
        """Parts received so far, ascending, so that a client can resume."""

    def list_open_uploads(self, tenant: str, prefix: str = "") -> list[OpenUpload]:
        """Uploads not yet completed or aborted: lets the API expire abandoned ones and
        recover its bookkeeping after a crash."""

    def complete_upload(
        self, tenant: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """``parts`` are (number, etag) in ascending order; the object appears atomically.
        A missing part, wrong ETag, wrong order or a too small part raises InvalidInput."""

    def abort_upload(self, tenant: str, key: str, upload_id: str) -> None:
        """Drops the upload and its parts; NotFound if it is not open."""

    def list_objects(self, tenant: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Complete objects only, in key order."""

    def open_object(self, tenant: str, key: str) -> ObjectReader:
        """Reads one object back (tests, small files); use it as a context manager."""

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        """Deletes every object whose key starts with ``prefix``; returns how many."""

    def download_prefix(self, tenant: str, prefix: str, dest: Path) -> list[Path]:
        """Copies every object under ``prefix`` to ``dest`` keeping the key's part after
        ``prefix`` as relative path; returns the files written."""
