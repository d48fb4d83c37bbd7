"""Argument checks every backend runs before touching storage."""

from __future__ import annotations

from imm.domain.checksums import unquote_etag
from imm.domain.errors import InvalidInput
from imm.domain.keys import check_key, check_prefix
from imm.domain.multipart import MAX_PART_NUMBER, MIN_PART_NUMBER, MIN_PART_SIZE, MiB
from imm.domain.names import check_name


def tenant(value: str) -> str:
    return check_name(value, "tenant name")


def key(value: str) -> str:
    return check_key(value, "object key")


def prefix(value: str) -> str:
    return check_prefix(value, "prefix")


def part_number(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("part number must be an integer")
    if not MIN_PART_NUMBER <= value <= MAX_PART_NUMBER:
        raise InvalidInput(
            f"part number must be {MIN_PART_NUMBER} to {MAX_PART_NUMBER}, got {value}"
        )
    return value


def completion(parts: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(number, bare lower-case etag) pairs, strictly ascending, at least one."""
    if not parts:
        raise InvalidInput("completing an upload needs at least one part")
    result: list[tuple[int, str]] = []
    for number, etag in parts:
        part_number(number)
        if not isinstance(etag, str) or not etag:
            raise InvalidInput(f"part {number} needs its ETag")
        if result and number <= result[-1][0]:
            raise InvalidInput(
                "parts must be listed in ascending order of part number, each number once"
            )
        result.append((number, unquote_etag(etag)))
    return result


def not_last_part_size(number: int, size: int) -> None:
    """S3's EntityTooSmall rule, for every part of a completion but the last."""
    if size < MIN_PART_SIZE:
        raise InvalidInput(
            f"part {number} is {size} bytes; every part but the last must be at least "
            f"{MIN_PART_SIZE} bytes ({MIN_PART_SIZE // MiB} MiB)"
        )


def relative_path(obj_key: str, prefix_: str) -> str:
    """Where an object lands below a download folder: its key after ``prefix_``."""
    rel = obj_key[len(prefix_) :].lstrip("/")
    return rel or obj_key.rsplit("/", 1)[-1]
