"""The filesystem store: one folder per tenant, objects as plain files.

Layout under ``root``::

    <tenant>/<model>/<version>/<key?>/<file>      complete objects, nothing else
    .uploads/<tenant>/<uploadId>/                 an open upload (see fs_uploads)
    .trash/                                       what a delete is removing

Tenant names never start with a dot, so the staging folders cannot clash with a bucket.
Uploads live outside the visible tree on the same file system; completing one fsyncs the
object's file and ``os.replace``-s it into place, so an object appears whole or not at all.
Parts are not fsynced one by one: that would cost a disk flush per part, and the object is
fsynced before it appears.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from imm.domain.checksums import quote_etag
from imm.domain.errors import Conflict, InvalidInput, NotFound
from imm.store import checks
from imm.store.base import Checksums, ObjectInfo, OpenUpload, PartInfo
from imm.store.fs_uploads import TMP_PREFIX, UPLOAD_ID, UploadFolder, fsync_path
from imm.store.parts import multipart_etag

_ETAG_XATTR = "user.imm.etag"


def _set_etag(path: Path | int, etag: str) -> None:
    """Keeps the S3-style ETag with the file; file systems without user xattrs go without."""
    with contextlib.suppress(OSError):
        os.setxattr(path, _ETAG_XATTR, etag.encode())


def _get_etag(path: Path, st: os.stat_result) -> str:
    try:
        return os.getxattr(path, _ETAG_XATTR).decode()
    except OSError:
        return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # weak, like nginx's


class FilesystemStore:
    """The default store: no server, objects readable as plain files by the model server."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._uploads = self.root / ".uploads"
        self._trash = self.root / ".trash"
        for path in (self.root, self._uploads, self._trash):
            path.mkdir(parents=True, exist_ok=True)
        for leftover in self._trash.iterdir():  # deletes a crash interrupted
            shutil.rmtree(leftover, ignore_errors=True)

    # -- buckets ---------------------------------------------------------------------------

    def _bucket(self, tenant: str) -> Path:
        return self.root / checks.tenant(tenant)

    def _existing_bucket(self, tenant: str) -> Path:
        bucket = self._bucket(tenant)
        if not bucket.is_dir():
            raise NotFound(f"tenant {tenant!r} has no bucket")
        return bucket

    def create_bucket(self, tenant: str) -> None:
        self._bucket(tenant).mkdir(exist_ok=True)

    def delete_bucket(self, tenant: str) -> None:
        """Moves the bucket and its staging folder aside first, so they vanish at once."""
        for path in (self._bucket(tenant), self._uploads / tenant):
            doomed = self._trash / uuid.uuid4().hex
            try:
                path.rename(doomed)
            except FileNotFoundError:
                continue
            shutil.rmtree(doomed, ignore_errors=True)

    def bucket_exists(self, tenant: str) -> bool:
        return self._bucket(tenant).is_dir()

    # -- uploads ---------------------------------------------------------------------------

    def _upload(self, tenant: str, key: str, upload_id: str) -> UploadFolder:
        checks.tenant(tenant)
        checks.key(key)
        folder = None
        if isinstance(upload_id, str) and UPLOAD_ID.match(upload_id):
            folder = UploadFolder.open(self._uploads / tenant / upload_id)
        if folder is None or folder.key != key:
            raise NotFound(f"no open upload {upload_id!r} for {key!r}")
        return folder

    def start_upload(self, tenant: str, key: str, part_size: int | None = None) -> str:
        self._existing_bucket(tenant)
        checks.key(key)
        return UploadFolder.create(self._uploads / tenant, key, part_size).upload_id

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
        checks.part_number(number)
        folder = self._upload(tenant, key, upload_id)
        written, md5_hex = folder.write_part(number, chunks, size, checksums)
        return PartInfo(number, written, quote_etag(md5_hex))

    def list_parts(self, tenant: str, key: str, upload_id: str) -> list[PartInfo]:
        parts = self._upload(tenant, key, upload_id).parts()
        return [PartInfo(n, p.size, quote_etag(p.md5)) for n, p in sorted(parts.items())]

    def list_open_uploads(self, tenant: str, prefix: str = "") -> list[OpenUpload]:
        checks.tenant(tenant)
        checks.prefix(prefix)
        try:
            entries = list(os.scandir(self._uploads / tenant))
        except FileNotFoundError:
            return []
        result = []
        for entry in entries:
            folder = UploadFolder.open(Path(entry.path)) if UPLOAD_ID.match(entry.name) else None
            if folder is not None and folder.key.startswith(prefix):
                result.append(OpenUpload(folder.key, folder.upload_id, folder.initiated))
        return sorted(result, key=lambda u: (u.key, u.initiated))

    def complete_upload(
        self, tenant: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        wanted = checks.completion(parts)
        folder = self._upload(tenant, key, upload_id)
        target = self._existing_bucket(tenant) / key
        with folder.locked():
            have = folder.parts()
            chosen = []
            for i, (number, md5) in enumerate(wanted):
                part = have.get(number)
                if part is None or part.md5 != md5:
                    raise InvalidInput(f"part {number} with ETag {md5!r} was not uploaded")
                if i < len(wanted) - 1:
                    checks.not_last_part_size(number, part.size)
                chosen.append(part)
            etag = multipart_etag([md5 for _, md5 in wanted])
            self._prepare_target(target, key)
            with folder.assembled(chosen) as assembled:
                _set_etag(assembled, etag)
                os.replace(assembled, target)
                folder.close()  # the upload is no longer open from here on
        fsync_path(target.parent, directory=True)
        shutil.rmtree(folder.path, ignore_errors=True)
        st = target.stat()
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), etag)

    @staticmethod
    def _prepare_target(target: Path, key: str) -> None:
        """Checked before assembling: S3 keys may be both a file and a folder prefix
        (``a/b`` and ``a/b/c``), files cannot."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise Conflict(f"{key!r} lies below an existing object") from None
        if target.is_dir():
            raise Conflict(f"{key!r} is a folder of other objects") from None

    def abort_upload(self, tenant: str, key: str, upload_id: str) -> None:
        folder = self._upload(tenant, key, upload_id)
        doomed = self._trash / uuid.uuid4().hex
        with folder.locked():
            folder.path.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    # -- objects ---------------------------------------------------------------------------

    def _objects(self, tenant: str, prefix: str) -> list[tuple[str, Path, os.stat_result]]:
        bucket = self._existing_bucket(tenant)
        checks.prefix(prefix)
        start = bucket / prefix.rpartition("/")[0] if "/" in prefix else bucket
        found = []
        for dirpath, _dirs, names in os.walk(start):
            for name in names:
                path = Path(dirpath, name)
                obj_key = path.relative_to(bucket).as_posix()
                if obj_key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        found.append((obj_key, path, path.stat()))
        found.sort(key=lambda item: item[0].encode())
        return found

    def list_objects(self, tenant: str, prefix: str = "") -> Iterator[ObjectInfo]:
        for obj_key, path, st in self._objects(tenant, prefix):
            modified = datetime.fromtimestamp(st.st_mtime, UTC)
            yield ObjectInfo(obj_key, st.st_size, modified, _get_etag(path, st))

    def open_object(self, tenant: str, key: str) -> BinaryIO:
        path = self._existing_bucket(tenant) / checks.key(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no object {key!r}") from None

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        bucket = self._existing_bucket(tenant)
        count = 0
        for _key, path, _st in self._objects(tenant, prefix):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                count += 1
            self._prune(path.parent, bucket)
        return count

    @staticmethod
    def _prune(folder: Path, bucket: Path) -> None:
        """Removes folders left empty, so a deleted version leaves no trace."""
        while folder != bucket:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def download_prefix(self, tenant: str, prefix: str, dest: Path) -> list[Path]:
        written = []
        for obj_key, path, _st in self._objects(tenant, prefix):
            out = Path(dest) / checks.relative_path(obj_key, prefix)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
            try:
                shutil.copyfile(path, tmp)  # sendfile on Linux
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
            written.append(out)
        return written
