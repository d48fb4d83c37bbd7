"""Reading one part of a local file, for hashing and for sending.

A part is read at its own offset with ``preadv`` (no shared file position, so threads can
read one file at once). Parts up to ``IN_MEMORY`` bytes are read once into a buffer that
is hashed and then sent from; bigger parts are read twice in ``CHUNK``-sized pieces (once
to hash, once to send), so memory stays small whatever ``--part`` is.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1024 * 1024
IN_MEMORY = 64 * 1024 * 1024


def read_exact(fd: int, offset: int, length: int) -> memoryview:
    buf = memoryview(bytearray(length))
    done = 0
    while done < length:
        n = os.preadv(fd, [buf[done:]], offset + done)
        if n == 0:
            raise OSError(f"file ended {length - done} bytes early (was it changed?)")
        done += n
    return buf


class PartSource:
    """The bytes of one part, with their MD5, re-iterable for retries."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self.path, self.offset, self.length = path, offset, length
        self._buffer: memoryview | None = None
        self.md5_hex, self.md5_b64 = self._hash()

    def _hash(self) -> tuple[str, str]:
        md5 = hashlib.md5()
        if self.length <= IN_MEMORY:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                self._buffer = read_exact(fd, self.offset, self.length)
            finally:
                os.close(fd)
            md5.update(self._buffer)
        else:
            for chunk in self._read_chunks():
                md5.update(chunk)
        digest = md5.digest()
        return digest.hex(), base64.b64encode(digest).decode()

    def _read_chunks(self) -> Iterator[memoryview]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            pos, end = self.offset, self.offset + self.length
            while pos < end:
                size = min(CHUNK, end - pos)
                yield read_exact(fd, pos, size)
                pos += size
        finally:
            os.close(fd)

    def chunks(self) -> Iterator[memoryview]:
        """The part again from its start, one ``CHUNK`` at a time."""
        if self._buffer is None:
            yield from self._read_chunks()
            return
        for start in range(0, self.length, CHUNK):
            yield self._buffer[start : start + CHUNK]

    def release(self) -> None:
        self._buffer = None
