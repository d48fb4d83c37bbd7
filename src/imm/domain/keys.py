"""Object keys and file names, checked before they touch a file system or a bucket.

Keys become paths under the filesystem store's tenant folder and S3 object keys, so anything
that could escape the tenant folder (``..``, absolute paths, backslashes), confuse a listing
(empty segments, control characters) or exceed common limits (255 bytes a path segment, S3's
1024 bytes a key) is refused here with a message saying what is wrong.
"""

from __future__ import annotations

from imm.domain.errors import InvalidInput
from imm.domain.names import check_name, check_version

MAX_SEGMENT_BYTES = 255
MAX_KEY_BYTES = 1024


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _utf8_len(value: str, what: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode text") from None


def check_key(value: object, what: str = "key") -> str:
    """A relative, ``/``-separated path; returns it unchanged or raises InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if "\\" in value:
        raise InvalidInput(f"{what} {value!r} must not contain a backslash; use '/'")
    if any(_is_control(c) for c in value):
        raise InvalidInput(f"{what} {value!r} must not contain control characters")
    if value.startswith("/"):
        raise InvalidInput(f"{what} {value!r} must be a relative path, not start with '/'")
    size = _utf8_len(value, what)
    if size > MAX_KEY_BYTES:
        raise InvalidInput(f"{what} is {size} bytes long; the limit is {MAX_KEY_BYTES}")
    for segment in value.split("/"):
        if not segment:
            raise InvalidInput(f"{what} {value!r} must not contain empty segments ('//' or '/')")
        if segment in (".", ".."):
            raise InvalidInput(f"{what} {value!r} must not contain '.' or '..' segments")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidInput(
                f"{what} has a segment longer than {MAX_SEGMENT_BYTES} bytes: {segment[:40]!r}..."
            )
    return value


def check_file_name(value: object, what: str = "file name") -> str:
    """One path segment: a key without '/'."""
    check_key(value, what)
    assert isinstance(value, str)
    if "/" in value:
        raise InvalidInput(f"{what} {value!r} must not contain '/'; put folders in the key")
    return value


def check_prefix(value: object, what: str = "prefix") -> str:
    """A key prefix as S3 means it: '' (everything), a key, or a key followed by '/'."""
    if value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    check_key(value.removesuffix("/"), what)
    return value


def version_prefix(model: object, version: object) -> str:
    """``<model>/<version>/``: where every file of one model version lives."""
    return f"{check_name(model, 'model name')}/{check_version(version)}/"


def object_key(model: object, version: object, file_name: object, key: object = None) -> str:
    """``<model>/<version>/<key?>/<file>``, every part validated; ``key`` is a folder path."""
    prefix = version_prefix(model, version)
    name = check_file_name(file_name)
    if key is None or key == "":
        return check_key(prefix + name, "object key")
    folder = check_key(key, "key")
    return check_key(f"{prefix}{folder}/{name}", "object key")
