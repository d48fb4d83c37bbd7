"""Archives (.tar.gz, .tgz, .tar, .zip) unpacked into a private temporary folder first.

An archive is untrusted input: tar members go through tarfile's ``data`` filter (no
absolute paths, no ``..``, no links out of the folder, no devices) and zip members are
checked the same way by hand, since zipfile has no such filter.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from imm.domain.errors import InvalidInput

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
ZIP_SUFFIXES = (".zip",)


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(TAR_SUFFIXES + ZIP_SUFFIXES)


@contextmanager
def source_root(path: Path) -> Iterator[Path]:
    """``path`` itself, or the folder an archive unpacks into (removed afterwards).

    An archive holding a single top-level folder (``tar czf m.tar.gz saved_model/``) is
    uploaded from inside that folder, as the original platform's uploader did: the version
    folder must hold ``saved_model.pb`` itself, not ``saved_model/saved_model.pb``.
    """
    if not is_archive(path):
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="imm-unpack-"))
    try:
        if path.name.lower().endswith(ZIP_SUFFIXES):
            _unzip(path, tmp)
        else:
            _untar(path, tmp)
        entries = list(tmp.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            yield entries[0]
        else:
            yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _untar(path: Path, into: Path) -> None:
    try:
        with tarfile.open(path) as tar:
            tar.extractall(into, filter="data")
    except tarfile.FilterError as exc:
        raise InvalidInput(f"{path} holds an unsafe member: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"cannot unpack {path}: {exc}") from None


def _safe_zip_name(name: str) -> PurePosixPath:
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InvalidInput(f"zip member {name!r} is not a relative '/'-separated path")
    rel = PurePosixPath(name)
    if any(part == ".." for part in rel.parts):
        raise InvalidInput(f"zip member {name!r} points outside the archive's folder")
    return rel


def _unzip(path: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                rel = _safe_zip_name(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise InvalidInput(f"zip member {info.filename!r} is a symbolic link")
                target = into.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise InvalidInput(f"cannot unpack {path}: {exc}") from None
