"""The CLI's own file, ``~/.imm`` (or ``$IMM_CONFIG``): API address, tokens, certificate paths.

It holds bearer tokens, so it is written with mode 0600, atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imm.files import write_private

DEFAULT_API = "http://127.0.0.1:8000"


def config_path() -> Path:
    return Path(os.environ.get("IMM_CONFIG") or Path.home() / ".imm").expanduser()


@dataclass
class CliConfig:
    api: str = DEFAULT_API
    issuer: str | None = None
    client_id: str | None = None
    id_token: str | None = None
    refresh_token: str | None = None
    username: str | None = None
    tenant: str | None = None
    certs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> CliConfig:
        path = config_path()
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text() or "{}")
            except json.JSONDecodeError:
                data = {}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        config = cls(**known)
        if os.environ.get("IMM_API_URL"):
            config.api = os.environ["IMM_API_URL"]
        return config

    def save(self) -> Path:
        path = config_path()
        write_private(path, json.dumps(asdict(self), indent=2).encode())
        return path

    def forget_tokens(self) -> None:
        self.id_token = None
        self.refresh_token = None
        self.username = None
