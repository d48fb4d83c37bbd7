"""Reading one part of a local file, for checksumming and for sending.

A part is read at its own offset with ``pread`` (no shared file position, so threads can
read one file at once), in ``CHUNK``-sized ``bytes`` objects: those go to the socket as
they are (httpx/h11 copy neither a lone ``bytes`` chunk nor its slices), so each byte is
copied once into the process and once out of it. Parts up to ``IN_MEMORY`` bytes are read
once, on first use, and kept for sending and retries; bigger parts are read again for each
use (hashing, each send), so memory stays small whatever ``--part`` is.

Both checksums are computed only when asked for, once each. The CRC-32 is sent with the
part for the server to check (about 20 times cheaper than MD5, which the server computes
anyway for the ETag); the MD5 is compared, on resuming, with the ETag of a part the server
already holds, and a part found there is never sent, so its CRC-32 is never computed.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from imm.domain.checksums import crc32_b64 as _crc32_b64

CHUNK = 1024 * 1024
IN_MEMORY = 64 * 1024 * 1024


class PartSource:
    """The bytes of one part, with their checksums, re-iterable for retries."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self.path, self.offset, self.length = path, offset, length
        self._keep = length <= IN_MEMORY  # keep the chunks once read
        self._chunks: list[bytes] | None = None

    @cached_property
    def crc32_b64(self) -> str:
        """The x-amz-checksum-crc32 header of the part."""
        crc = 0
        for chunk in self.chunks():
            crc = zlib.crc32(chunk, crc)
        return _crc32_b64(crc)

    @cached_property
    def md5_hex(self) -> str:
        """The part's MD5, as the server's ETag for it."""
        md5 = hashlib.md5()
        for chunk in self.chunks():
            md5.update(chunk)
        return md5.hexdigest()

    def _read(self) -> Iterator[bytes]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            pos, end = self.offset, self.offset + self.length
            while pos < end:
                chunk = os.pread(fd, min(CHUNK, end - pos), pos)
                if not chunk:
                    raise OSError(f"{self.path} ended {end - pos} bytes early (was it changed?)")
                pos += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    def chunks(self) -> Iterator[bytes]:
        """The part again from its start."""
        if self._chunks is None and self._keep:
            self._chunks = list(self._read())
        if self._chunks is None:
            yield from self._read()
        else:
            yield from self._chunks

    def release(self) -> None:
        """Drops the kept chunks (``chunks`` would read the file again)."""
        self._chunks, self._keep = None, False
