"""Writing one part while hashing it, and the checksum rules both backends share.

A part is streamed chunk by chunk into a file and hashed on the way (MD5 for the ETag; the
client's own checksum when it sent one), so memory stays at one chunk whatever the part
size, and a mismatch is known before the part is committed anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from imm.domain.errors import InvalidInput, TooLarge
from imm.store.base import MAX_PART_SIZE, Checksums


class Sink(Protocol):
    """Where part bytes go: a file object, or a writer at a fixed offset of a file."""

    def write(self, data: bytes, /) -> object: ...


def _digest(value: str, length: int, header: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{header} is not valid base64") from None
    if len(raw) != length:
        raise InvalidInput(f"{header} must encode {length} bytes, got {len(raw)}")
    return raw


def multipart_etag(part_md5_hex: list[str]) -> str:
    """S3's ETag of a multipart object: MD5 of the binary part MD5s, then '-N'."""
    joined = b"".join(bytes.fromhex(h) for h in part_md5_hex)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(part_md5_hex)}"'


class Written(NamedTuple):
    size: int
    md5: bytes  # binary; empty when not computed
    crc32: int | None  # None when not computed


def write_part(
    chunks: Iterable[bytes],
    out: Sink,
    size: int | None = None,
    checksums: Checksums = Checksums(),
    md5: bool = True,
) -> Written:
    """Copies ``chunks`` to ``out``; returns what was written once every check passed. The
    caller discards ``out`` when this raises. ``md5=False`` computes the CRC-32 instead of
    the MD5 (1.6 CPU-seconds per GiB), unless Content-MD5 must be checked: an S3 server
    computes its own ETag. Each hash runs only when a check or the caller needs it."""
    want_md5 = _digest(checksums.md5, 16, "Content-MD5") if checksums.md5 else None
    want_sha = _digest(checksums.sha256, 32, "x-amz-checksum-sha256") if checksums.sha256 else None
    want_crc = (
        int.from_bytes(_digest(checksums.crc32, 4, "x-amz-checksum-crc32"), "big")
        if checksums.crc32
        else None
    )
    if size is not None and size > MAX_PART_SIZE:
        raise TooLarge(f"a part may be at most {MAX_PART_SIZE} bytes, got {size}")
    md5_hash = hashlib.md5() if md5 or want_md5 is not None else None
    sha = hashlib.sha256() if want_sha is not None else None
    crc = 0 if want_crc is not None or not md5 else None
    written = 0
    for chunk in chunks:
        if not chunk:
            continue
        written += len(chunk)
        if written > MAX_PART_SIZE:
            raise TooLarge(f"a part may be at most {MAX_PART_SIZE} bytes")
        if size is not None and written > size:
            raise InvalidInput(f"the part is longer than its declared size of {size} bytes")
        if md5_hash is not None:
            md5_hash.update(chunk)
        if sha is not None:
            sha.update(chunk)
        if crc is not None:
            crc = zlib.crc32(chunk, crc)
        out.write(chunk)
    if size is not None and written != size:
        raise InvalidInput(f"the part ended after {written} of {size} bytes")
    digest = md5_hash.digest() if md5_hash is not None else b""
    if want_md5 is not None and digest != want_md5:
        raise InvalidInput("Content-MD5 does not match the part received; nothing was kept")
    if sha is not None and sha.digest() != want_sha:
        raise InvalidInput(
            "x-amz-checksum-sha256 does not match the part received; nothing was kept"
        )
    if want_crc is not None and crc != want_crc:
        raise InvalidInput(
            "x-amz-checksum-crc32 does not match the part received; nothing was kept"
        )
    return Written(written, digest, crc)
