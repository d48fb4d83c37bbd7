"""The filesystem store: one folder per tenant, objects as plain files.

Layout under ``root``::

    <tenant>/<model>/<version>/<key?>/<file>      complete objects, nothing else
    .uploads/<tenant>/<uploadId>/meta.json        open upload: key and start time
    .uploads/<tenant>/<uploadId>/00001.<md5hex>   its parts (the name carries the ETag)
    .trash/                                       what a bucket delete is removing

Tenant names never start with a dot, so the staging folders cannot clash with a bucket.
Parts live outside the visible tree on the same file system; completing an upload renames
the first part into a temporary file, appends the others with ``copy_file_range`` (a
kernel-side copy), fsyncs it and ``os.replace``-s it into place, so an object appears whole
or not at all and a single-part object is never copied. Parts are not fsynced one by one:
that would cost a disk flush per part, and the assembled object is fsynced before it appears.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from imm.domain.errors import Conflict, InvalidInput, NotFound
from imm.store import checks
from imm.store.base import MIN_PART_SIZE, ObjectInfo, OpenUpload, PartInfo
from imm.store.parts import multipart_etag, quote_etag, write_part

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_PART_FILE = re.compile(r"^(\d{5})\.([0-9a-f]{32})$")
_ETAG_XATTR = "user.imm.etag"
_TMP_PREFIX = ".tmp-"


def _now() -> datetime:
    return datetime.now(UTC)


def _set_etag(path: Path | int, etag: str) -> None:
    """Keeps the S3-style ETag with the file; file systems without user xattrs go without."""
    with contextlib.suppress(OSError):
        os.setxattr(path, _ETAG_XATTR, etag.encode())


def _get_etag(path: Path, st: os.stat_result) -> str:
    try:
        return os.getxattr(path, _ETAG_XATTR).decode()
    except OSError:
        return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # weak, like nginx's


def _copy_into(dst_fd: int, src: Path, at: int) -> int:
    """Writes ``src`` at offset ``at`` of ``dst_fd`` in the kernel (reflinks where the
    file system can); returns the offset after it."""
    with open(src, "rb") as f:
        remaining = os.fstat(f.fileno()).st_size
        while remaining > 0:
            try:
                n = os.copy_file_range(f.fileno(), dst_fd, remaining, offset_dst=at)
            except OSError as e:  # EXDEV, ENOSYS, EINVAL on odd file systems
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                os.lseek(dst_fd, at, os.SEEK_SET)
                n = os.sendfile(dst_fd, f.fileno(), None, remaining)
            if n == 0:
                raise OSError(errno.EIO, f"short copy from {src}")
            remaining -= n
            at += n
    return at


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemStore:
    """The default store: no server, objects readable as plain files by the model server."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._uploads = self.root / ".uploads"
        self._trash = self.root / ".trash"
        for path in (self.root, self._uploads, self._trash):
            path.mkdir(parents=True, exist_ok=True)

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

    def _upload_dir(self, tenant: str, key: str, upload_id: str) -> Path:
        checks.tenant(tenant)
        checks.key(key)
        missing = NotFound(f"no open upload {upload_id!r} for {key!r}")
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise missing
        folder = self._uploads / tenant / upload_id
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise missing from None
        if meta.get("key") != key:
            raise missing
        return folder

    @contextlib.contextmanager
    def _locked(self, folder: Path, tenant: str, key: str, upload_id: str) -> Iterator[None]:
        """Serialises part replacement, completion and abort of one upload (across
        processes too, since the lock is on a file)."""
        try:
            fd = os.open(folder / "meta.json", os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"no open upload {upload_id!r} for {key!r}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not (folder / "meta.json").exists():  # completed or aborted meanwhile
                raise NotFound(f"no open upload {upload_id!r} for {key!r}")
            yield
        finally:
            os.close(fd)

    def start_upload(self, tenant: str, key: str) -> str:
        self._existing_bucket(tenant)
        checks.key(key)
        upload_id = uuid.uuid4().hex
        staging = self._uploads / tenant
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / f"{_TMP_PREFIX}{upload_id}"
        tmp.mkdir()
        meta = {"key": key, "initiated": _now().isoformat()}
        (tmp / "meta.json").write_text(json.dumps(meta))
        tmp.rename(staging / upload_id)  # an upload id is listed only with its meta
        return upload_id

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
        checks.part_number(number)
        folder = self._upload_dir(tenant, key, upload_id)
        tmp = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "xb") as out:
                written, digest = write_part(chunks, out, size, md5_b64, sha256_b64)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        md5_hex = digest.hex()
        final = folder / f"{number:05d}.{md5_hex}"
        try:
            with self._locked(folder, tenant, key, upload_id):
                os.replace(tmp, final)
                for old in folder.glob(f"{number:05d}.*"):
                    if old != final:
                        old.unlink(missing_ok=True)
        finally:
            tmp.unlink(missing_ok=True)
        return PartInfo(number, written, quote_etag(md5_hex))

    @staticmethod
    def _parts(folder: Path) -> dict[int, tuple[Path, str, int]]:
        parts: dict[int, tuple[Path, str, int]] = {}
        with os.scandir(folder) as entries:
            for entry in entries:
                match = _PART_FILE.match(entry.name)
                if match:
                    size = entry.stat().st_size
                    parts[int(match[1])] = (Path(entry.path), match[2], size)
        return parts

    def list_parts(self, tenant: str, key: str, upload_id: str) -> list[PartInfo]:
        folder = self._upload_dir(tenant, key, upload_id)
        try:
            parts = self._parts(folder)
        except FileNotFoundError:
            raise NotFound(f"no open upload {upload_id!r} for {key!r}") from None
        return [PartInfo(n, size, quote_etag(md5)) for n, (_, md5, size) in sorted(parts.items())]

    def list_open_uploads(self, tenant: str, prefix: str = "") -> list[OpenUpload]:
        checks.tenant(tenant)
        checks.prefix(prefix)
        result = []
        try:
            entries = list(os.scandir(self._uploads / tenant))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not _UPLOAD_ID.match(entry.name):
                continue
            try:
                meta = json.loads(Path(entry.path, "meta.json").read_text())
            except (FileNotFoundError, ValueError):
                continue  # completed or aborted while we looked
            if meta["key"].startswith(prefix):
                initiated = datetime.fromisoformat(meta["initiated"])
                result.append(OpenUpload(meta["key"], entry.name, initiated))
        return sorted(result, key=lambda u: (u.key, u.initiated))

    def complete_upload(
        self, tenant: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        wanted = checks.completion(parts)
        folder = self._upload_dir(tenant, key, upload_id)
        target = self._existing_bucket(tenant) / key
        with self._locked(folder, tenant, key, upload_id):
            have = self._parts(folder)
            files = []
            for i, (number, md5) in enumerate(wanted):
                if number not in have or have[number][1] != md5:
                    raise InvalidInput(f"part {number} with ETag {md5!r} was not uploaded")
                if i < len(wanted) - 1 and have[number][2] < MIN_PART_SIZE:
                    raise InvalidInput(
                        f"part {number} is {have[number][2]} bytes; every part but the last "
                        f"must be at least {MIN_PART_SIZE} bytes"
                    )
                files.append(have[number][0])
            etag = multipart_etag([md5 for _, md5 in wanted])
            assembled = self._assemble(folder, files)
            _set_etag(assembled, etag)
            self._publish(assembled, target, key)
            (folder / "meta.json").unlink()  # the upload is closed from here on
        shutil.rmtree(folder, ignore_errors=True)
        st = target.stat()
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), etag)

    @staticmethod
    def _assemble(folder: Path, files: list[Path]) -> Path:
        """The first part becomes the object file by rename; the rest are appended.
        On failure the first part is restored, so the upload can still be completed."""
        assembled = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        first = files[0]
        first_size = first.stat().st_size
        os.rename(first, assembled)
        try:
            fd = os.open(assembled, os.O_WRONLY)
            try:
                at = first_size
                for part in files[1:]:
                    at = _copy_into(fd, part, at)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            os.truncate(assembled, first_size)
            os.rename(assembled, first)
            raise
        return assembled

    def _publish(self, assembled: Path, target: Path, key: str) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(assembled, target)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise Conflict(
                f"{key!r} clashes with an existing object or folder of the same name"
            ) from None
        _fsync_dir(target.parent)

    def abort_upload(self, tenant: str, key: str, upload_id: str) -> None:
        folder = self._upload_dir(tenant, key, upload_id)
        with self._locked(folder, tenant, key, upload_id):
            doomed = self._trash / uuid.uuid4().hex
            folder.rename(doomed)
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
            tmp = out.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}")
            try:
                shutil.copyfile(path, tmp)  # sendfile on Linux
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
            written.append(out)
        return written
