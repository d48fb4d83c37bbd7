"""``imm certs`` refuses to replace any of its files before it writes one of them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from imm.cli.certs import app


def test_ca_writes_no_key_when_the_certificate_exists(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("an older CA\n")
    result = CliRunner().invoke(app, ["ca", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert not (tmp_path / "ca.key").exists()  # a new key would not match the old ca.crt
    assert (tmp_path / "ca.crt").read_text() == "an older CA\n"


def test_force_replaces_both_files_atomically(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("an older CA\n")
    result = CliRunner().invoke(app, ["ca", "--out", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca.crt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key"]  # no temp files
