"""S3's checksum and ETag encodings, shared by the uploading client and the stores."""

from __future__ import annotations

import base64


def crc32_b64(value: int) -> str:
    """The x-amz-checksum-crc32 header value of a ``zlib.crc32`` result: big-endian, base64."""
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def quote_etag(md5_hex: str) -> str:
    return f'"{md5_hex}"'


def unquote_etag(etag: str) -> str:
    """Clients send ETags with or without quotes (and sometimes upper-case); compare bare."""
    return etag.strip().strip('"').lower()
