"""What one upload run sends: the files under PATH as object keys, and each file's parts.

Names are checked here with the same rules the API applies, so a bad file name in a tree
is reported before any upload of the version is started (and nothing is left to abort).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imm.domain.errors import InvalidInput
from imm.domain.keys import object_key
from imm.domain.multipart import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE, MiB

PART_MB_MIN, PART_MB_MAX, PART_MB_DEFAULT = MIN_PART_SIZE // MiB, MAX_PART_SIZE // MiB, 30


@dataclass(frozen=True)
class Part:
    number: int
    offset: int
    length: int


@dataclass(frozen=True)
class FileSpec:
    """One local file and where it goes inside the version."""

    path: Path
    file_name: str
    key: str | None  # folder inside the version, '/'-separated; None at the top
    size: int

    @property
    def relative(self) -> str:
        return f"{self.key}/{self.file_name}" if self.key else self.file_name

    def parts(self, part_size: int) -> list[Part]:
        """Every part but the last is ``part_size`` long; a file of at most one part (an
        empty one too) is sent as one part."""
        if self.size <= part_size:
            return [Part(1, 0, self.size)]
        return [
            Part(n, offset, min(part_size, self.size - offset))
            for n, offset in enumerate(range(0, self.size, part_size), start=1)
        ]


def check_part_mb(value: int) -> int:
    """The original platform's rule: whole MiB, 5 to 5000."""
    if not PART_MB_MIN <= value <= PART_MB_MAX:
        raise InvalidInput(
            f"part size must be an integer between {PART_MB_MIN} and {PART_MB_MAX} (MiB), "
            f"got {value}"
        )
    return value


def plan_files(root: Path, model: str, version: int, part_size: int) -> list[FileSpec]:
    """The regular files of ``root`` (one file, or a directory walked in sorted order).

    Symbolic links inside a directory are refused rather than followed: following them
    could upload files from outside the tree the user named.
    """
    if root.is_file():
        files = [FileSpec(root, root.name, None, root.stat().st_size)]
    elif root.is_dir():
        files = list(_walk(root))
        if not files:
            raise InvalidInput(f"{root} holds no files to upload")
    elif root.exists():
        raise InvalidInput(f"{root} is neither a regular file nor a directory")
    else:
        raise InvalidInput(f"{root} does not exist")
    for spec in files:
        object_key(model, version, spec.file_name, spec.key)  # raises with the reason
        count = -(-spec.size // part_size)
        if count > MAX_PART_NUMBER:
            need = -(-spec.size // MAX_PART_NUMBER // MiB)
            raise InvalidInput(
                f"{spec.relative} needs {count} parts of {part_size // MiB} MiB, more than "
                f"{MAX_PART_NUMBER}; use --part {need} or more"
            )
    return files


def _walk(root: Path) -> list[FileSpec]:
    found: list[FileSpec] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        here = Path(folder)
        for name in sorted(names):
            path = here / name
            if path.is_symlink():
                raise InvalidInput(f"{path} is a symbolic link; only regular files are uploaded")
            if not path.is_file():
                raise InvalidInput(f"{path} is not a regular file")
            rel_dir = here.relative_to(root).as_posix()
            key = None if rel_dir == "." else rel_dir
            found.append(FileSpec(path, name, key, path.stat().st_size))
        for d in dirs:
            if (here / d).is_symlink():
                raise InvalidInput(
                    f"{here / d} is a symbolic link; only regular files are uploaded"
                )
    return found
