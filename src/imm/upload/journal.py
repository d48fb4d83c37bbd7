"""The local journal of an upload run: which upload id each file got, and which are done.

The server knows which parts it holds but not which local file an upload belongs to; the
journal keeps that link so an interrupted run can continue where it stopped. It is keyed
by API, tenant, model, version and the resolved PATH, lives in ``~/.imm-uploads/`` (or
``$IMM_UPLOAD_JOURNAL_DIR``), and is removed once the version is complete or aborted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from imm.files import write_private


def journal_dir() -> Path:
    return Path(os.environ.get("IMM_UPLOAD_JOURNAL_DIR") or Path.home() / ".imm-uploads")


@dataclass
class FileEntry:
    relative: str  # key/file_name inside the version
    upload_id: str
    size: int
    mtime_ns: int
    done: bool = False


@dataclass
class Journal:
    api: str
    tenant: str
    model: str
    version: int
    source: str  # the resolved PATH the user gave
    fingerprint: str  # size and mtime of an archive PATH; '' for files and folders
    part_size: int
    files: dict[str, FileEntry] = field(default_factory=dict)

    @staticmethod
    def path_for(api: str, tenant: str, model: str, version: int, source: str) -> Path:
        ident = "\n".join([api.rstrip("/"), tenant, model, str(version), source])
        name = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return journal_dir() / f"{name}.json"

    @property
    def path(self) -> Path:
        return self.path_for(self.api, self.tenant, self.model, self.version, self.source)

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        """None when there is no journal, or one this version of IMM cannot read."""
        try:
            data = json.loads(path.read_text())
            files = {k: FileEntry(**v) for k, v in data.pop("files").items()}
            return cls(**data, files=files)
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            return None

    def save(self) -> None:
        data = asdict(self)
        write_private(self.path, json.dumps(data, indent=2).encode())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
