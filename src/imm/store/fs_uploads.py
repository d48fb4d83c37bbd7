"""Open uploads of the filesystem store: one folder each, outside the visible tree.

A folder holds ``meta.json`` (key, start time, part size hint), the parts, and one record
file per received part whose name carries the part's number, MD5 and, for parts written in
place, its size: ``00001.<md5>`` is a part kept in that file, ``00001.<md5>.s<size>`` a part
kept in the shared ``data`` file at offset ``(number - 1) * part_size``.

Why in place: a multipart object assembled from part files is written twice (parts, then
the copy), which halves throughput on a disk-bound machine. When the client says its part
size up front (every part but the last has it, as the CLI's do), each part is written
straight to its final offset of ``data``, and completing is a truncate, an fsync and a
rename. A part goes in place only while no record vouches for the bytes of its slot and no
one else writes that slot (an ``flock`` on ``slot-<n>``); otherwise, and for parts of other
sizes or uploads without a hint, it gets its own file, and completion copies the parts
together in the kernel (``copy_file_range``). In-place writers hold a shared lock on
``data``; completion renames ``data`` only with the exclusive lock, so a stray writer can
never write into a published object. Records change under an ``flock`` of meta.json, so
resends, completion and abort do not race, across processes too. Lock order: slot, data,
meta; completion holds meta and only tries the data lock, so nothing deadlocks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from imm.domain.errors import InvalidInput, NotFound
from imm.store.base import MAX_PART_SIZE, Checksums
from imm.store.parts import write_part

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
TMP_PREFIX = ".tmp-"
_RECORD = re.compile(r"^(\d{5})\.([0-9a-f]{32})(?:\.s(\d+))?$")
_MAX_SLOT_END = 1 << 40  # far below ext4's 16 TiB file size limit


@dataclass(frozen=True)
class StoredPart:
    number: int
    md5: str
    size: int
    path: Path  # the part's own file, or its record when it lives in ``data``
    in_place: bool


class _WriterAt:
    """A file-like sink writing at a fixed offset with pwrite (no shared file position)."""

    def __init__(self, fd: int, offset: int) -> None:
        self.fd, self.offset = fd, offset

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, self.offset)
            self.offset += n
            view = view[n:]
        return len(data)


def _copy_range(dst: int, src: Path, src_offset: int, count: int, at: int) -> int:
    """Copies ``count`` bytes in the kernel (reflinks where the file system can);
    returns the destination offset after them."""
    with open(src, "rb") as f:
        while count > 0:
            try:
                n = os.copy_file_range(f.fileno(), dst, count, src_offset, at)
            except OSError as e:  # EXDEV, ENOSYS, EINVAL on odd file systems
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                os.lseek(dst, at, os.SEEK_SET)
                n = os.sendfile(dst, f.fileno(), src_offset, count)
            if n == 0:
                raise OSError(errno.EIO, f"{src} is shorter than its record says")
            count, src_offset, at = count - n, src_offset + n, at + n
    return at


def _start_writeback(fd: int, offset: int, count: int) -> None:
    """Lets the disk write this part while the next ones arrive, so the fsync at completion
    has little left to do (on Linux, DONTNEED starts writeback of dirty pages without
    waiting). Without it the kernel would start only after ~30 s or gigabytes of dirt."""
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, offset, count, os.POSIX_FADV_DONTNEED)


def fsync_path(path: Path, directory: bool = False) -> None:
    """Flushes a file, or a folder's entries (after a rename into it), to the disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UploadFolder:
    def __init__(self, path: Path, key: str, initiated: datetime, part_size: int | None):
        self.path, self.key, self.initiated, self.part_size = path, key, initiated, part_size

    @property
    def upload_id(self) -> str:
        return self.path.name

    def _gone(self) -> NotFound:
        return NotFound(f"no open upload {self.upload_id!r} for {self.key!r}")

    @classmethod
    def create(cls, staging: Path, key: str, part_size: int | None) -> UploadFolder:
        """The folder appears under its id only complete with its meta.json."""
        if part_size is not None and not 1 <= part_size <= MAX_PART_SIZE:
            raise InvalidInput(f"part size must be 1 to {MAX_PART_SIZE} bytes, got {part_size}")
        upload_id = uuid.uuid4().hex
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / f"{TMP_PREFIX}{upload_id}"
        tmp.mkdir()
        initiated = datetime.now(UTC)
        meta = {"key": key, "initiated": initiated.isoformat(), "part_size": part_size}
        (tmp / "meta.json").write_text(json.dumps(meta))
        tmp.rename(staging / upload_id)
        return cls(staging / upload_id, key, initiated, part_size)

    @classmethod
    def open(cls, path: Path) -> UploadFolder | None:
        """None when there is no open upload at ``path`` (never was, completed, aborted)."""
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        initiated = datetime.fromisoformat(meta["initiated"])
        return cls(path, meta["key"], initiated, meta.get("part_size"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.path / "meta.json", os.O_RDONLY)
        except FileNotFoundError:
            raise self._gone() from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not (self.path / "meta.json").exists():  # completed or aborted meanwhile
                raise self._gone()
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        """Marks the upload as no longer open (call while holding the lock)."""
        (self.path / "meta.json").unlink()

    # -- parts -----------------------------------------------------------------------------

    def _write_in_place(
        self,
        number: int,
        chunks: Iterable[bytes],
        size: int | None,
        checksums: Checksums,
    ) -> tuple[int, str] | None:
        """None when the part cannot go in place; then nothing was read from ``chunks``."""
        size_hint = self.part_size
        if not size_hint or size is None or size > size_hint:
            return None
        if number * size_hint > _MAX_SLOT_END:
            return None
        try:
            slot = os.open(self.path / f"slot-{number:05d}", os.O_CREAT | os.O_WRONLY, 0o644)
        except FileNotFoundError:
            raise self._gone() from None
        try:
            try:
                fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # the same part number is being written right now
            if any(self.path.glob(f"{number:05d}.*.s*")):
                return None  # a record vouches for the bytes in the slot
            try:
                fd = os.open(self.path / "data", os.O_WRONLY | os.O_CREAT, 0o644)
            except FileNotFoundError:
                raise self._gone() from None
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if not (self.path / "meta.json").exists():
                    raise self._gone()  # completed: ``data`` may be a published object now
                offset = (number - 1) * size_hint
                written, digest, _ = write_part(chunks, _WriterAt(fd, offset), size, checksums)
                _start_writeback(fd, offset, written)
                self._record(number, self.path / f"{number:05d}.{digest.hex()}.s{written}", None)
            finally:
                os.close(fd)
        finally:
            os.close(slot)
        return written, digest.hex()

    def write_part(
        self,
        number: int,
        chunks: Iterable[bytes],
        size: int | None,
        checksums: Checksums,
    ) -> tuple[int, str]:
        """Returns (size, md5 hex) once the part is recorded; on any error no record
        changes."""
        done = self._write_in_place(number, chunks, size, checksums)
        if done is not None:
            return done
        tmp = self.path / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "xb") as out:
                written, digest, _ = write_part(chunks, out, size, checksums)
            self._record(number, self.path / f"{number:05d}.{digest.hex()}", tmp)
        except FileNotFoundError:
            raise self._gone() from None
        finally:
            tmp.unlink(missing_ok=True)
        return written, digest.hex()

    def _record(self, number: int, record: Path, content: Path | None) -> None:
        with self.locked():
            if content is None:
                record.touch()
            else:
                os.replace(content, record)
            for old in self.path.glob(f"{number:05d}.*"):
                if old != record:
                    old.unlink(missing_ok=True)

    def parts(self) -> dict[int, StoredPart]:
        found: dict[int, StoredPart] = {}
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            raise self._gone() from None
        for entry in entries:
            match = _RECORD.match(entry.name)
            if not match:
                continue
            number, md5, in_place_size = int(match[1]), match[2], match[3]
            try:
                size = int(in_place_size) if in_place_size else entry.stat().st_size
            except FileNotFoundError:
                continue  # replaced while we looked
            found[number] = StoredPart(number, md5, size, Path(entry.path), bool(in_place_size))
        return found

    @contextlib.contextmanager
    def assembled(self, chosen: list[StoredPart]) -> Iterator[Path]:
        """The object's bytes in one fsynced file inside this folder, to be renamed into
        place before the context ends; use while holding the lock."""
        if self.part_size and self._contiguous_in_place(chosen):
            fd = os.open(self.path / "data", os.O_RDWR)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # a stray in-place write is running: copy instead, below
                else:
                    os.ftruncate(fd, (len(chosen) - 1) * self.part_size + chosen[-1].size)
                    os.fsync(fd)
                    yield self.path / "data"
                    return
            finally:
                os.close(fd)
        if len(chosen) == 1 and not chosen[0].in_place:
            fsync_path(chosen[0].path)
            yield chosen[0].path
            return
        out = self.path / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            self._copy_parts(chosen, out)
            yield out
        finally:
            out.unlink(missing_ok=True)

    def _contiguous_in_place(self, chosen: list[StoredPart]) -> bool:
        """True when ``data`` already is the object, up to its length."""
        return (
            all(p.in_place for p in chosen)
            and [p.number for p in chosen] == list(range(1, len(chosen) + 1))
            and all(p.size == self.part_size for p in chosen[:-1])
        )

    def _copy_parts(self, chosen: list[StoredPart], out: Path) -> None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            at = 0
            for p in chosen:
                if p.in_place:
                    offset = (p.number - 1) * (self.part_size or 0)
                    at = _copy_range(fd, self.path / "data", offset, p.size, at)
                else:
                    at = _copy_range(fd, p.path, 0, p.size, at)
            os.fsync(fd)
        finally:
            os.close(fd)
