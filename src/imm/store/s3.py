"""The S3 store: one bucket per tenant, real S3 multipart uploads, via boto3.

Works with AWS S3 and S3-compatible servers (SeaweedFS, MinIO). A part is first spooled to an
unnamed temporary file while it is hashed: that keeps memory flat, lets a checksum mismatch
be refused before anything reaches the bucket (S3 itself only checks Content-MD5, and
SHA-256 part checksums would tie the whole upload to one algorithm), and gives botocore a
seekable body it can retry. The part then goes up with a checksum the S3 server verifies (the
client's Content-MD5, else the CRC-32 computed on the way in), which is also why payload
signing is off: the checksum protects the body without a second SHA-256 pass over it.
"""

from __future__ import annotations

import base64
import contextlib
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from imm.domain.checksums import crc32_b64, quote_etag, unquote_etag
from imm.domain.errors import Conflict, InvalidInput, NotFound, TooLarge
from imm.store import checks
from imm.store.base import (
    Checksums,
    ObjectInfo,
    ObjectReader,
    OpenUpload,
    PartInfo,
)
from imm.store.parts import write_part

MAX_BUCKET_NAME = 63
_DELETE_BATCH = 1000
_NOT_FOUND = {"NoSuchBucket", "NoSuchUpload", "NoSuchKey", "404", "NotFound"}
_INVALID = {"BadDigest", "InvalidDigest", "InvalidPart", "InvalidPartOrder", "EntityTooSmall"}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """S3 error codes as domain errors, so the API maps both backends the same way."""
    try:
        yield
    except ClientError as e:
        code = _code(e)
        message = e.response.get("Error", {}).get("Message", code)
        if code in _NOT_FOUND:
            raise NotFound(f"{what}: not found ({code})") from None
        if code in _INVALID:
            raise InvalidInput(f"{what}: {message} ({code})") from None
        if code == "EntityTooLarge":
            raise TooLarge(f"{what}: {message}") from None
        raise


class S3Store:
    """Tenant ``t``'s bucket is ``<bucket_prefix>t``."""

    def __init__(
        self,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
        bucket_prefix: str = "imm-",
        spool_dir: Path | None = None,
        max_connections: int = 32,
    ) -> None:
        self.bucket_prefix = bucket_prefix
        self.region = region
        self._spool_dir = spool_dir
        if spool_dir is not None:
            Path(spool_dir).mkdir(parents=True, exist_ok=True)
        config = Config(
            region_name=region,
            signature_version="s3v4",
            # Path style works with every S3-compatible server; AWS picks for itself.
            s3={
                "addressing_style": "path" if endpoint else "auto",
                "payload_signing_enabled": False,
            },
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=max_connections,
            tcp_keepalive=True,
            # Newer botocore adds CRC32 trailers (aws-chunked) to every upload by default;
            # not every S3-compatible server takes them, and we send a checksum anyway.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._s3: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self._transfer = TransferConfig(
            multipart_threshold=64 * 1024 * 1024,
            multipart_chunksize=64 * 1024 * 1024,
            max_concurrency=8,
        )

    @property
    def client(self) -> Any:
        """The boto3 client, for presigned URLs and tests."""
        return self._s3

    def bucket_name(self, tenant: str) -> str:
        name = self.bucket_prefix + checks.tenant(tenant)
        if len(name) > MAX_BUCKET_NAME:
            raise InvalidInput(
                f"bucket name {name!r} would exceed S3's {MAX_BUCKET_NAME} characters; "
                "use a shorter tenant name or bucket prefix"
            )
        return name

    # -- buckets ---------------------------------------------------------------------------

    def create_bucket(self, tenant: str) -> None:
        bucket = self.bucket_name(tenant)
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._s3.create_bucket(**kwargs)
        except ClientError as e:
            if _code(e) == "BucketAlreadyOwnedByYou":
                return
            if _code(e) == "BucketAlreadyExists" and self.bucket_exists(tenant):
                return  # some servers say so even to the owner
            if _code(e) == "BucketAlreadyExists":
                raise Conflict(f"bucket {bucket!r} belongs to someone else") from None
            raise

    def delete_bucket(self, tenant: str) -> None:
        bucket = self.bucket_name(tenant)
        if not self.bucket_exists(tenant):
            return
        for upload in self.list_open_uploads(tenant):
            with contextlib.suppress(NotFound):
                self.abort_upload(tenant, upload.key, upload.upload_id)
        with contextlib.suppress(NotFound):
            self.delete_prefix(tenant, "")
        try:
            self._s3.delete_bucket(Bucket=bucket)
        except ClientError as e:
            if _code(e) != "NoSuchBucket":
                raise

    def bucket_exists(self, tenant: str) -> bool:
        bucket = self.bucket_name(tenant)
        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return False
            raise
        return True

    # -- uploads ---------------------------------------------------------------------------

    def start_upload(self, tenant: str, key: str, part_size: int | None = None) -> str:
        """Checks the bucket first: some servers (SeaweedFS) create missing buckets on
        upload, and a deleted tenant must not come back that way. S3 needs no part size
        hint."""
        bucket = self.bucket_name(tenant)
        checks.key(key)
        if not self.bucket_exists(tenant):
            raise NotFound(f"tenant {tenant!r} has no bucket")
        with _translated(f"starting an upload of {key!r}"):
            response = self._s3.create_multipart_upload(Bucket=bucket, Key=key)
        return str(response["UploadId"])

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
        bucket = self.bucket_name(tenant)
        checks.key(key)
        checks.part_number(number)
        with tempfile.TemporaryFile(dir=self._spool_dir) as spool:
            # The server checks what it receives against a checksum we computed on the
            # way in: the client's MD5 when it sent one, else our CRC-32 (the server
            # computes the MD5 ETag itself, so the API need not).
            written = write_part(chunks, spool, size, checksums, md5=False)
            if written.md5:
                check = {"ContentMD5": base64.b64encode(written.md5).decode()}
            else:
                assert written.crc32 is not None  # write_part computes it when md5=False
                check = {"ChecksumCRC32": crc32_b64(written.crc32)}
            spool.seek(0)
            with _translated(f"part {number} of upload {upload_id!r}"):
                response = self._s3.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=spool,
                    ContentLength=written.size,
                    **check,
                )
        return PartInfo(number, written.size, quote_etag(unquote_etag(response["ETag"])))

    def _raw_parts(self, bucket: str, key: str, upload_id: str) -> Iterator[dict[str, Any]]:
        with _translated(f"upload {upload_id!r}"):
            pages = self._s3.get_paginator("list_parts").paginate(
                Bucket=bucket, Key=key, UploadId=upload_id
            )
            for page in pages:
                yield from page.get("Parts", [])

    def _all_parts(self, bucket: str, key: str, upload_id: str) -> dict[tuple[int, str], int]:
        """(number, bare ETag) -> size, for every part entry the server lists."""
        return {
            (int(p["PartNumber"]), unquote_etag(p["ETag"])): int(p["Size"])
            for p in self._raw_parts(bucket, key, upload_id)
        }

    def list_parts(self, tenant: str, key: str, upload_id: str) -> list[PartInfo]:
        """One entry per part number, the newest. SeaweedFS keeps a part sent twice as two
        entries (with one-second timestamps) and completes with whichever ETag it is
        given; S3 lists only the last one. So a part re-sent with other bytes within the
        same second may be listed with its earlier ETag there: a resuming client then sends
        it once more, which is harmless."""
        bucket = self.bucket_name(tenant)
        newest: dict[int, tuple[Any, PartInfo]] = {}
        for p in self._raw_parts(bucket, checks.key(key), upload_id):
            etag = quote_etag(unquote_etag(p["ETag"]))
            info = PartInfo(int(p["PartNumber"]), int(p["Size"]), etag)
            seen = newest.get(info.number)
            if seen is None or p["LastModified"] >= seen[0]:
                newest[info.number] = (p["LastModified"], info)
        return [info for _, (_, info) in sorted(newest.items())]

    def list_open_uploads(self, tenant: str, prefix: str = "") -> list[OpenUpload]:
        bucket = self.bucket_name(tenant)
        checks.prefix(prefix)
        result = []
        try:
            pages = self._s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for u in page.get("Uploads", []):
                    result.append(OpenUpload(u["Key"], u["UploadId"], u["Initiated"]))
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return []
            raise
        return sorted(result, key=lambda u: (u.key, u.initiated))

    def complete_upload(
        self, tenant: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Checks parts against ListParts first: S3-compatible servers differ in how
        strictly they enforce part sizes, and the contract must not."""
        bucket = self.bucket_name(tenant)
        wanted = checks.completion(parts)
        have = self._all_parts(bucket, checks.key(key), upload_id)
        for i, (number, etag) in enumerate(wanted):
            size = have.get((number, etag))
            if size is None:
                raise InvalidInput(f"part {number} with ETag {etag!r} was not uploaded")
            if i < len(wanted) - 1:
                checks.not_last_part_size(number, size)
        with _translated(f"completing upload {upload_id!r}"):
            response = self._s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": quote_etag(e)} for n, e in wanted]
                },
            )
            head = self._s3.head_object(Bucket=bucket, Key=key)
        etag = quote_etag(unquote_etag(response.get("ETag") or head["ETag"]))
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"], etag)

    def abort_upload(self, tenant: str, key: str, upload_id: str) -> None:
        bucket = self.bucket_name(tenant)
        checks.key(key)
        with _translated(f"upload {upload_id!r}"):
            self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    # -- objects ---------------------------------------------------------------------------

    def list_objects(self, tenant: str, prefix: str = "") -> Iterator[ObjectInfo]:
        bucket = self.bucket_name(tenant)
        checks.prefix(prefix)
        with _translated(f"tenant {tenant!r}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for o in page.get("Contents", []):
                    etag = quote_etag(unquote_etag(o["ETag"]))
                    yield ObjectInfo(o["Key"], int(o["Size"]), o["LastModified"], etag)

    def open_object(self, tenant: str, key: str) -> ObjectReader:
        bucket = self.bucket_name(tenant)
        with _translated(f"object {key!r}"):
            response = self._s3.get_object(Bucket=bucket, Key=checks.key(key))
        body: ObjectReader = response["Body"]
        return body

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        bucket = self.bucket_name(tenant)
        keys = [o.key for o in self.list_objects(tenant, prefix)]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with _translated(f"tenant {tenant!r}"):
                response = self._s3.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise RuntimeError(
                    f"{len(errors)} object(s) not deleted, e.g. {first.get('Key')!r}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )
        return len(keys)

    def download_prefix(self, tenant: str, prefix: str, dest: Path) -> list[Path]:
        """Objects download in parallel; large ones also in parallel ranges (s3transfer),
        each written to a temporary name and renamed when complete."""
        bucket = self.bucket_name(tenant)
        objects = list(self.list_objects(tenant, prefix))
        targets = [Path(dest) / checks.relative_path(o.key, prefix) for o in objects]

        def fetch(item: tuple[ObjectInfo, Path]) -> Path:
            obj, target = item
            target.parent.mkdir(parents=True, exist_ok=True)
            with _translated(f"object {obj.key!r}"):
                self._s3.download_file(bucket, obj.key, str(target), Config=self._transfer)
            return target

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(fetch, zip(objects, targets, strict=True)))
