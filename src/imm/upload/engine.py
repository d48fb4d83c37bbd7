"""The upload engine: one model version from a local PATH, in parallel, resumable.

Order matters for atomicity: every file's upload is started before any is completed, so
the registry keeps the version hidden until the last file completes (see
imm.api.registry). Parts of all files go through one thread pool; completion comes last.

On Ctrl-C the run stops its workers between chunks and aborts every upload it opened (a
version some of whose files were already completed is deleted instead), unless ``keep``
is set: then the uploads stay open and the journal says how to continue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from imm.client import ApiError, Client
from imm.domain.checksums import quote_etag, unquote_etag
from imm.domain.errors import InvalidInput
from imm.domain.names import check_name, check_version
from imm.upload.archives import is_archive, source_root
from imm.upload.journal import FileEntry, Journal
from imm.upload.plan import FileSpec, MiB, Part, check_part_mb, plan_files
from imm.upload.reader import PartSource
from imm.upload.retry import Cancelled, RetryPolicy, is_transient

PARALLEL_MAX = 64
T = TypeVar("T")


class Progress(Protocol):
    """What the engine reports; called from worker threads too."""

    def begin(self, total_bytes: int, files: int, parts: int) -> None: ...

    def advance(self, nbytes: int) -> None:
        """Bytes sent (or found already on the server); negative after a failed attempt."""

    def note(self, text: str) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    def begin(self, total_bytes: int, files: int, parts: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def end(self) -> None:
        pass


class UploadError(Exception):
    """The run failed; ``resumable`` says whether its uploads were kept for ``--resume``."""

    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


class Interrupted(UploadError):
    """Ctrl-C: the uploads were aborted, or kept when ``resumable``."""


@dataclass
class UploadRequest:
    path: Path
    tenant: str
    model: str
    version: int
    part_mb: int = 30
    parallel: int = 4
    resume: bool = False  # insist on a journal to continue from
    keep: bool = False  # on Ctrl-C keep the uploads open instead of aborting them


@dataclass
class UploadResult:
    model: str
    version: int
    files: int
    size: int
    part_size: int
    parts_sent: int
    parts_skipped: int
    bytes_sent: int
    resumed: bool
    seconds: float


@dataclass
class _FileUpload:
    spec: FileSpec
    entry: FileEntry
    received: dict[int, tuple[int, str]] = field(default_factory=dict)  # number -> size, md5
    etags: dict[int, str] = field(default_factory=dict)


class Uploader:
    def __init__(
        self,
        client: Client,
        request: UploadRequest,
        progress: Progress | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.client, self.req = client, request
        self.progress = progress or NoProgress()
        self.policy = policy or RetryPolicy()
        self.cancel = threading.Event()
        self.sent = self.skipped = self.bytes_sent = 0
        self._count = threading.Lock()

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> UploadResult:
        req, began = self.req, time.monotonic()
        part_size = self._check_request()
        source = req.path.expanduser().resolve()
        fingerprint = _fingerprint(source) if is_archive(source) else ""
        journal = Journal.load(
            Journal.path_for(self.client.api_url, req.tenant, req.model, req.version, str(source))
        )
        if req.resume and journal is None:
            raise UploadError(
                f"nothing to resume: no journal of an upload of {source} into "
                f"{req.model} version {req.version} (tenant {req.tenant})"
            )
        if journal is not None and journal.fingerprint != fingerprint:
            self.progress.note(f"{source} changed since the interrupted upload; starting over")
            self._discard(journal)
            journal = None
        resumed = journal is not None
        if journal is None:
            journal = Journal(
                self.client.api_url, req.tenant, req.model, req.version, str(source),
                fingerprint, part_size,
            )  # fmt: skip
        elif journal.part_size != part_size:
            self.progress.note(
                f"continuing with the interrupted upload's part size of "
                f"{journal.part_size // MiB} MiB"
            )
        with source_root(source) as root:
            try:
                files = plan_files(root, req.model, req.version, journal.part_size)
            except InvalidInput as exc:
                raise UploadError(exc.detail) from None
            archived = bool(fingerprint)
            uploads = self._guarded(journal, lambda: self._open_all(files, journal, archived))
            self._guarded(journal, lambda: self._send_all(uploads, journal.part_size))
            self._guarded(journal, lambda: self._complete_all(uploads, journal))
        journal.remove()
        self.progress.end()
        return UploadResult(
            req.model, req.version, len(files), sum(f.size for f in files), journal.part_size,
            self.sent, self.skipped, self.bytes_sent, resumed, time.monotonic() - began,
        )  # fmt: skip

    def _check_request(self) -> int:
        req = self.req
        try:
            check_name(req.tenant, "tenant")
            check_name(req.model, "model name")
            check_version(req.version)
            part_size = check_part_mb(req.part_mb) * MiB
        except InvalidInput as exc:
            raise UploadError(exc.detail) from None
        if not 1 <= req.parallel <= PARALLEL_MAX:
            raise UploadError(f"--parallel must be 1 to {PARALLEL_MAX}, got {req.parallel}")
        return part_size

    def _guarded(self, journal: Journal, step: Callable[[], T]) -> T:
        """Runs one phase; on Ctrl-C or an error decides whether the uploads live on."""
        try:
            return step()
        except (KeyboardInterrupt, Cancelled):
            self.cancel.set()
            self.progress.end()
            if self.req.keep:
                journal.save()
                raise Interrupted(
                    "interrupted; the upload is kept: run the same command with --resume "
                    "to continue it",
                    resumable=True,
                ) from None
            self._discard(journal)
            raise Interrupted("interrupted; the upload was aborted and nothing was kept") from None
        except (ApiError, OSError, UploadError) as exc:
            self.cancel.set()
            self.progress.end()
            if _resumable(exc):
                journal.save()
                raise UploadError(
                    f"{_message(exc)}\nThe upload is kept: run the same command with --resume "
                    "to continue it.",
                    resumable=True,
                ) from None
            self._discard(journal)
            raise UploadError(_message(exc)) from None

    # -- phases ----------------------------------------------------------------------------

    def _open_all(
        self, files: list[FileSpec], journal: Journal, archived: bool
    ) -> list[_FileUpload]:
        """Starts (or finds again, from the journal) one upload per file, all before any
        part is sent. The journal is saved after each start, so even a SIGKILL leaves no
        upload the next run does not know about."""
        wanted = {f.relative for f in files}
        stale = [e for rel, e in journal.files.items() if rel not in wanted and not e.done]
        if stale:
            self.progress.note(f"aborting {len(stale)} upload(s) of files no longer in the source")
            self._abort(stale)
            for entry in stale:
                del journal.files[entry.relative]
        uploads: list[_FileUpload] = []
        resumed_parts = 0
        for spec in files:
            mtime = 0 if archived else spec.path.stat().st_mtime_ns
            entry = journal.files.get(spec.relative)
            if entry is not None and (entry.size, entry.mtime_ns) != (spec.size, mtime):
                if entry.done:
                    raise UploadError(  # the version could not be made whole: discarded
                        f"{spec.relative} changed after it was uploaded; the unfinished "
                        "version was discarded, upload it again"
                    )
                self.progress.note(f"{spec.relative} changed; uploading it from the start")
                self._abort([entry])
                entry = None
            received: dict[int, tuple[int, str]] = {}
            if entry is not None and not entry.done:
                received = self._received(entry)
                if received is None:
                    self.progress.note(f"the upload of {spec.relative} is gone; starting it again")
                    entry = None
                resumed_parts += len(received or {})
            if entry is None:
                upload_id = self._retry(
                    lambda s=spec: self.client.upload_start(
                        self.req.tenant, self.req.model, self.req.version, s.file_name, s.key,
                        part_size=journal.part_size if s.size > journal.part_size else None,
                    ),  # the size lets the filesystem store write parts in place
                    f"starting {spec.relative}",
                )  # fmt: skip
                entry = FileEntry(spec.relative, upload_id, spec.size, mtime)
                journal.files[spec.relative] = entry
                journal.save()
            uploads.append(_FileUpload(spec, entry, received or {}))
        if resumed_parts:
            self.progress.note(f"resuming: the server already holds {resumed_parts} part(s)")
        return uploads

    def _received(self, entry: FileEntry) -> dict[int, tuple[int, str]] | None:
        """The parts the server holds for ``entry``'s upload; None if the upload is gone."""
        try:
            status = self._retry(
                lambda: self.client.upload_status(self.req.tenant, entry.upload_id),
                f"checking {entry.relative}",
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return {p["partNumber"]: (p["size"], unquote_etag(p["ETag"])) for p in status["parts"]}

    def _send_all(self, uploads: list[_FileUpload], part_size: int) -> None:
        tasks = [(u, p) for u in uploads if not u.entry.done for p in u.spec.parts(part_size)]
        self.progress.begin(sum(p.length for _, p in tasks), len(uploads), len(tasks))
        if not tasks:
            return
        pool = ThreadPoolExecutor(min(self.req.parallel, len(tasks)), "imm-upload")
        try:
            pending = {pool.submit(self._part, u, p) for u, p in tasks}
            while pending:  # a timed wait, so Ctrl-C reaches this thread promptly
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
        except BaseException:
            self.cancel.set()  # workers stop at their next chunk
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _part(self, upload: _FileUpload, part: Part) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        source = PartSource(upload.spec.path, part.offset, part.length)
        held = upload.received.get(part.number)
        if held is not None and held == (part.length, source.md5_hex):
            upload.etags[part.number] = quote_etag(source.md5_hex)
            self.progress.advance(part.length)
            with self._count:
                self.skipped += 1
            return
        crc32_b64 = source.crc32_b64  # reads the part (and keeps it, if small) once

        def attempt() -> dict:
            sent = 0

            def body() -> Iterator[bytes]:
                nonlocal sent
                for chunk in source.chunks():
                    if self.cancel.is_set():
                        raise Cancelled()
                    yield chunk
                    sent += len(chunk)
                    self.progress.advance(len(chunk))

            try:
                return self.client.upload_part(
                    self.req.tenant, upload.entry.upload_id, part.number, body(),
                    crc32_b64=crc32_b64, size=part.length,
                )  # fmt: skip
            except BaseException:
                self.progress.advance(-sent)
                raise

        answer = self._retry(attempt, f"part {part.number} of {upload.spec.relative}")
        source.release()
        upload.etags[part.number] = answer["ETag"]
        with self._count:
            self.sent += 1
            self.bytes_sent += part.length

    def _complete_all(self, uploads: list[_FileUpload], journal: Journal) -> None:
        """The version becomes visible when the last of these completes."""
        for upload in uploads:
            if upload.entry.done:
                continue
            parts = sorted(upload.etags.items())
            self._retry(
                lambda u=upload, p=parts: self.client.upload_done(
                    self.req.tenant, u.entry.upload_id, p
                ),
                f"completing {upload.spec.relative}",
            )
            upload.entry.done = True
            journal.save()

    # -- helpers ---------------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        def say(attempt: int, exc: BaseException, wait_s: float) -> None:
            self.progress.note(f"{what}: {_message(exc)}; retry {attempt} in {wait_s:.1f} s")

        return self.policy.call(fn, self.cancel, say)

    def _abort(self, entries: list[FileEntry]) -> None:
        for entry in entries:
            with suppress(ApiError):
                self.client.upload_abort(self.req.tenant, entry.upload_id)

    def _discard(self, journal: Journal) -> None:
        """Leaves nothing behind: a version some files of which completed is deleted
        whole (which also aborts its open uploads); otherwise each upload is aborted."""
        entries = list(journal.files.values())
        if any(e.done for e in entries):
            with suppress(ApiError):
                self.client.delete_model_version(self.req.tenant, self.req.model, self.req.version)
        else:
            self._abort(entries)
        journal.remove()


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _resumable(exc: BaseException) -> bool:
    if isinstance(exc, UploadError):
        return exc.resumable
    if isinstance(exc, ApiError):
        return is_transient(exc) or exc.status in (401, 404)
    return isinstance(exc, OSError)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ApiError) and exc.status == 409 and "already open" in exc.detail:
        return f"{exc} (imm models delete MODEL VERSION discards the open uploads)"
    return str(exc)
