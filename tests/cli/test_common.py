"""Option parsing shared by the commands, checked before any request is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from imm.cli import endpoints, tenants
from imm.cli.common import fail
from imm.cli.output import Output, show


@pytest.fixture(autouse=True)
def no_saved_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMM_CONFIG", str(tmp_path / "imm.json"))
    monkeypatch.setenv("IMM_API_URL", "http://127.0.0.1:9")  # never reached


@pytest.mark.parametrize("pair", ["limits.cpu", " =4", "=4", "limits.cpu= ", "limits.cpu="])
def test_quota_and_resources_refuse_a_missing_key_or_value(tmp_path: Path, pair: str) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("a CA\n")
    runner = CliRunner()
    quota = runner.invoke(
        tenants.app, ["create", "t", "--scope", "t", "--ca-cert", str(ca), "--quota", pair]
    )
    resource = runner.invoke(
        endpoints.app,
        ["create", "e", "-m", "m", "-v", "1", "-s", "c", "-t", "t", "--resource", pair],
    )
    for result, option in ((quota, "--quota"), (resource, "--resource")):
        assert result.exit_code == 1
        assert f"{option} takes KEY=VALUE" in result.output


def test_fail_prints_brackets_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail("expected [float32] got [/x]", 2)
    assert exit_.exit_code == 2
    assert "error: expected [float32] got [/x]" in capsys.readouterr().err


def test_tables_print_brackets_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"values": "[b'ab', b'cd']", "lastError": "[/data/x] is missing"}]
    show(rows, Output.table, title="t")
    out = capsys.readouterr().out
    assert "[b'ab', b'cd']" in out and "[/data/x] is missing" in out
