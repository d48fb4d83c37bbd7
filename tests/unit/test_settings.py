"""Settings come from IMM_* variables, then an optional TOML file, then defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from imm.config import Settings


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("IMM_")]:
        monkeypatch.delenv(name)
    s = Settings()
    assert (s.api_listen, s.ingress_listen, s.domain) == (
        "127.0.0.1:8000", "127.0.0.1:8443", "imm.localhost"
    )  # fmt: skip
    assert s.data_dir == Path(".imm-data")
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("imm.db")
    assert s.issuer_url == "http://127.0.0.1:8000/oidc"
    assert (s.oidc_client_id, s.admin_group, s.store, s.runtime) == (
        "imm-cli",
        "admin",
        "fs",
        "local",
    )


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file = tmp_path / "imm.toml"
    settings_file.write_text('domain = "models.example.com"\napi_listen = "0.0.0.0:9000"\n')
    monkeypatch.setenv("IMM_SETTINGS_FILE", str(settings_file))
    monkeypatch.delenv("IMM_DOMAIN", raising=False)
    monkeypatch.setenv("IMM_API_LISTEN", "127.0.0.1:9100")
    s = Settings()
    assert s.domain == "models.example.com"  # from the file
    assert s.api_host_port == ("127.0.0.1", 9100)  # the environment wins over the file


def test_external_issuer_turns_the_builtin_one_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMM_OIDC_ISSUER", "https://dex.example.com/")
    s = Settings()
    assert not s.builtin_issuer_enabled
    assert s.issuer_url == "https://dex.example.com"


@pytest.mark.parametrize("value", ["8000", "localhost", "host:port", "h:70000"])
def test_bad_listen_address_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("IMM_API_LISTEN", value)
    with pytest.raises(ValidationError):
        Settings()
