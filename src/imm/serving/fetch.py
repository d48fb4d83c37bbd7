"""Bring ``<base>/<version>/`` from a local folder or ``s3://bucket/prefix`` into the cache.

A replica restarts often (rolling updates, crashes), so objects the cache already holds are
not copied again: each cached version keeps a manifest of what it copied (size plus S3 ETag,
or size plus mtime for local files). Files land under a temporary name and are renamed, and
replicas sharing a cache take a file lock, so a reader never sees half a model.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from imm.serving.errors import ModelError

log = logging.getLogger("imm.serving.fetch")

MANIFEST = ".imm-manifest.json"
MODEL_MARKERS = ("saved_model.pb",)
MODEL_SUFFIXES = (".onnx",)
NO_MODEL = (
    "holds neither an ONNX model (*.onnx) nor a TensorFlow SavedModel (saved_model.pb + variables/)"
)


@dataclass(frozen=True)
class SourceObject:
    path: str  # relative to the version folder, '/'-separated
    size: int
    tag: str  # ETag or mtime: changes when the content does


class Source(Protocol):
    uri: str

    def versions(self) -> dict[int, list[SourceObject]]: ...

    def copy(self, version: int, obj: SourceObject, dest: Path) -> None: ...


def _is_model_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name in MODEL_MARKERS or name.endswith(MODEL_SUFFIXES)


def complete(objects: list[SourceObject]) -> bool:
    """A version is servable only once its model file is there (uploads land atomically)."""
    return any(_is_model_file(o.path) for o in objects)


class LocalSource:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.uri = str(base)
        self._dirs: dict[int, Path] = {}

    def versions(self) -> dict[int, list[SourceObject]]:
        if not self.base.is_dir():
            raise ModelError(f"model base path {self.base} is not a folder")
        self._dirs = {
            int(c.name): c for c in self.base.iterdir() if c.is_dir() and c.name.isdigit()
        }
        return {version: list(self._objects(folder)) for version, folder in self._dirs.items()}

    @staticmethod
    def _objects(folder: Path) -> Iterator[SourceObject]:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                st = path.stat()
                rel = path.relative_to(folder).as_posix()
                yield SourceObject(rel, st.st_size, str(st.st_mtime_ns))

    def copy(self, version: int, obj: SourceObject, dest: Path) -> None:
        shutil.copyfile(self._dirs[version] / obj.path, dest)


def s3_client() -> Any:
    """boto3 client from IMM_S3_* settings, falling back to the usual AWS_* variables."""
    import boto3
    from botocore.config import Config

    env = os.environ
    return boto3.client(
        "s3",
        endpoint_url=env.get("IMM_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or None,
        aws_access_key_id=env.get("IMM_S3_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("IMM_S3_SECRET_KEY") or env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("IMM_S3_REGION") or env.get("AWS_REGION") or "us-east-1",
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}
        ),
    )


class S3Source:
    def __init__(self, uri: str, client: Any = None) -> None:
        rest = uri[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ModelError(f"{uri} names no bucket; expected s3://bucket/prefix")
        self.uri = uri
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or s3_client()

    def versions(self) -> dict[int, list[SourceObject]]:
        found: dict[int, list[SourceObject]] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    rest = item["Key"][len(self.prefix) :]
                    head, _, rel = rest.partition("/")
                    if head.isdigit() and rel and not rel.endswith("/"):
                        obj = SourceObject(rel, item["Size"], item["ETag"].strip('"'))
                        found.setdefault(int(head), []).append(obj)
        except Exception as exc:
            raise ModelError(f"cannot list {self.uri}: {exc}") from None
        return found

    def copy(self, version: int, obj: SourceObject, dest: Path) -> None:
        key = f"{self.prefix}{version}/{obj.path}"
        self.client.download_file(self.bucket, key, str(dest))


def open_source(base: str) -> Source:
    if base.startswith("s3://"):
        return S3Source(base)
    return LocalSource(Path(base).expanduser().resolve())


def choose_version(available: dict[int, list[SourceObject]], wanted: int | None, uri: str) -> int:
    """The requested version, or the highest complete one (TF Serving's 'latest' policy)."""
    if wanted is not None:
        if wanted not in available:
            have = ", ".join(map(str, sorted(available))) or "none"
            raise ModelError(f"version {wanted} not found under {uri} (versions: {have})")
        if not complete(available[wanted]):
            raise ModelError(f"version {wanted} under {uri} {NO_MODEL}")
        return wanted
    ready = [v for v, objs in available.items() if complete(objs)]
    if not ready:
        have = ", ".join(map(str, sorted(available))) or "none"
        raise ModelError(f"no version under {uri} is complete (versions: {have}); each {NO_MODEL}")
    return max(ready)


@dataclass(frozen=True)
class Fetched:
    version: int
    path: Path
    copied: int  # objects copied this time
    reused: int  # objects the cache already held


def fetch(
    base: str,
    model: str,
    version: int | None,
    cache_dir: Path,
    on_chosen: Callable[[int], None] | None = None,
) -> Fetched:
    """Resolve the version (``on_chosen`` hears it before any copying), then sync it."""
    source = open_source(base)
    available = source.versions()
    chosen = choose_version(available, version, source.uri)
    if on_chosen:
        on_chosen(chosen)
    objects = available[chosen]
    dest = cache_dir / model / str(chosen)
    dest.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / model / f"{chosen}.lock"):
        copied, reused = _sync(source, chosen, objects, dest)
    log.info(
        "model version fetched",
        extra={"source": source.uri, "version": chosen, "copied": copied, "reused": reused},
    )
    return Fetched(chosen, dest, copied, reused)


class _locked:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _sync(source: Source, version: int, objects: list[SourceObject], dest: Path) -> tuple[int, int]:
    manifest_path = dest / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    kept = {}
    copied = reused = 0
    for obj in objects:
        target = dest / obj.path
        record = {"size": obj.size, "tag": obj.tag}
        if manifest.get(obj.path) == record and _size(target) == obj.size:
            reused += 1
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            os.close(fd)
            try:
                source.copy(version, obj, Path(tmp))
                if _size(Path(tmp)) != obj.size:
                    raise ModelError(f"{obj.path}: copied size differs from the source's")
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            copied += 1
        kept[obj.path] = record
    wanted = set(kept)
    for path in dest.rglob("*"):
        rel = path.relative_to(dest).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in wanted:
            path.unlink()
    tmp_manifest = manifest_path.with_suffix(".tmp")
    tmp_manifest.write_text(json.dumps(kept, sort_keys=True))
    os.replace(tmp_manifest, manifest_path)
    return copied, reused


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
