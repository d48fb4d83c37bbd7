"""The ``imm`` command as a user runs it: login flows, the config file, tenant commands."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fixtures.pki import ca_pem
from fixtures.platform import ADMIN_PASSWORD, Platform


def saved_config(platform: Platform) -> dict:
    return json.loads(Path(platform.env["IMM_CONFIG"]).read_text())


def test_browser_login_flow_end_to_end(platform: Platform) -> None:
    """Drive the authorization endpoint's form and the CLI's loopback callback, no person."""
    Path(platform.env["IMM_CONFIG"]).unlink(missing_ok=True)
    platform.add_user("heidi", "team-h")
    cli = subprocess.Popen(
        [sys.executable, "-m", "imm", "login", "--no-browser", "--api", platform.url],
        env=platform.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = ""
        assert cli.stdout is not None
        for line in cli.stdout:
            if line.startswith("http"):
                url = line.strip()
                break
        assert url.startswith(f"{platform.issuer}/authorize?"), url
        form = httpx.get(url)
        assert form.status_code == 200
        assert '<form method="post"' in form.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.text))
        assert fields["code_challenge_method"] == "S256"

        wrong = httpx.post(
            f"{platform.issuer}/authorize",
            data={**fields, "username": "heidi", "password": "nope-nope"},
        )
        assert wrong.status_code == 401
        assert "Wrong user name or password" in wrong.text

        submitted = httpx.post(
            f"{platform.issuer}/authorize",
            data={**fields, "username": "heidi", "password": "user-password-for-tests"},
        )
        assert submitted.status_code == 303
        callback = submitted.headers["location"]
        assert callback.startswith("http://127.0.0.1:")
        assert "code=" in callback and "state=" in callback
        landed = httpx.get(callback)
        assert landed.status_code == 200
        out, err = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    assert "Logged in as heidi" in out

    path = Path(platform.env["IMM_CONFIG"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = saved_config(platform)
    assert config["username"] == "heidi"
    assert config["id_token"] and config["refresh_token"]
    whoami = platform.imm("whoami", "--output", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["groups"] == ["team-h"]


def test_authorize_refuses_foreign_redirects_and_missing_pkce(platform: Platform) -> None:
    base = {
        "response_type": "code",
        "client_id": "imm-cli",
        "redirect_uri": "http://127.0.0.1:9999/callback",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    assert httpx.get(f"{platform.issuer}/authorize", params=base).status_code == 200
    for change in (
        {"redirect_uri": "https://evil.example/callback"},
        {"client_id": "someone"},
        {"code_challenge_method": "plain"},
        {"code_challenge": ""},
        {"response_type": "token"},
    ):
        response = httpx.get(f"{platform.issuer}/authorize", params={**base, **change})
        assert response.status_code == 400, change
        assert response.headers["content-type"].startswith("application/problem+json")


def test_code_is_single_use_and_bound_to_its_verifier(platform: Platform) -> None:
    platform.add_user("ivan", "team-i")
    params = {
        "response_type": "code",
        "client_id": "imm-cli",
        "redirect_uri": "http://127.0.0.1:9999/cb",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",  # RFC 7636 example
        "code_challenge_method": "S256",
    }
    answer = httpx.post(
        f"{platform.issuer}/authorize",
        data={**params, "username": "ivan", "password": "user-password-for-tests"},
    )
    code = re.search(r"code=([^&]+)", answer.headers["location"]).group(1)
    exchange = {
        "grant_type": "authorization_code",
        "client_id": "imm-cli",
        "code": code,
        "redirect_uri": params["redirect_uri"],
    }
    bad = httpx.post(f"{platform.issuer}/token", data={**exchange, "code_verifier": "wrong" * 10})
    assert bad.status_code == 400
    # The failed attempt used the code up.
    good_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    again = httpx.post(
        f"{platform.issuer}/token", data={**exchange, "code_verifier": good_verifier}
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_tenant_commands_and_password_login(platform: Platform, tmp_path: Path) -> None:
    login = platform.imm(
        "login",
        "--api",
        platform.url,
        "-u",
        "admin",
        "--password-stdin",
        input=ADMIN_PASSWORD + "\n",
    )
    assert login.returncode == 0, login.stderr
    ca = tmp_path / "ca.pem"
    ca.write_text(ca_pem("CLI Tenant CA"))
    created = platform.imm(
        "tenants",
        "create",
        "team-cli",
        "--scope",
        "team-cli",
        "--ca-cert",
        str(ca),
        "--quota",
        "limits.cpu=2",
        "--quota",
        "maxEndpoints=4",
        "--output",
        "json",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["quota"] == {"limits.cpu": "2", "maxEndpoints": 4}

    listed = platform.imm("tenants", "list", "--output", "json")
    assert "team-cli" in [t["name"] for t in json.loads(listed.stdout)]
    table = platform.imm("tenants", "list")
    assert "team-cli" in table.stdout
    viewed = platform.imm("tenants", "view", "team-cli", "-o", "json")
    assert json.loads(viewed.stdout)["scope"] == "team-cli"

    dup = platform.imm("tenants", "create", "team-cli", "--scope", "x", "--ca-cert", str(ca))
    assert dup.returncode == 1
    assert "409" in dup.stderr and "already exists" in dup.stderr
    bad = platform.imm(
        "tenants",
        "create",
        "team-bad",
        "--scope",
        "x",
        "--ca-cert",
        str(ca),
        "--quota",
        "limits.cpu",
    )
    assert bad.returncode == 1 and "KEY=VALUE" in bad.stderr

    deleted = platform.imm("tenants", "delete", "team-cli", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    gone = platform.imm("tenants", "view", "team-cli")
    assert gone.returncode == 1 and "404" in gone.stderr

    assert platform.imm("logout").returncode == 0
    after = platform.imm("whoami")
    assert after.returncode == 1 and "imm login" in after.stderr


def test_expired_token_is_refreshed_automatically(make_platform: Callable[..., Platform]) -> None:
    short = make_platform(IMM_OIDC_TOKEN_TTL="60")  # within the CLI's refresh margin
    short.add_user("judy", "team-j")
    login = short.imm("login", "--api", short.url, "-u", "judy", "-p", "user-password-for-tests")
    assert login.returncode == 0, login.stderr
    first = saved_config(short)["id_token"]
    whoami = short.imm("whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert saved_config(short)["id_token"] != first


def test_admin_user_commands(platform: Platform) -> None:
    add = platform.imm(
        "admin",
        "add-user",
        "kim",
        "--group",
        "g1",
        "--group",
        "g2",
        "--password-stdin",
        input="kims-password\n",
    )
    assert add.returncode == 0, add.stderr
    users = json.loads(platform.imm("admin", "list-users", "-o", "json").stdout)
    assert {"name": "kim", "email": "kim@imm.local", "groups": ["g1", "g2"]} in users
    users_file = platform.data_dir / "oidc" / "users.json"
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert "kims-password" not in users_file.read_text()
    assert "$argon2" in users_file.read_text()
    # A running platform sees the new user at once.
    assert platform.login("kim", "kims-password")["id_token"]

    dup = platform.imm("admin", "add-user", "kim", "--password", "another-pass")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    short = platform.imm("admin", "add-user", "lee", "--password", "short")
    assert short.returncode == 1 and "8 characters" in short.stderr
    bad = platform.imm("admin", "add-user", "bad user!", "--password", "long-enough")
    assert bad.returncode == 1

    assert platform.imm("admin", "remove-user", "kim").returncode == 0
    refused = httpx.post(
        f"{platform.issuer}/token",
        data={
            "grant_type": "password",
            "client_id": "imm-cli",
            "username": "kim",
            "password": "kims-password",
        },
    )
    assert refused.status_code == 400
    missing = platform.imm("admin", "remove-user", "kim")
    assert missing.returncode == 1


def test_admin_password_printed_once_when_not_given(
    make_platform: Callable[..., Platform], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMM_")}
    assert "IMM_ADMIN_PASSWORD" not in env
    p = make_platform(IMM_ADMIN_PASSWORD="")
    first_log = p.log()
    match = re.search(r"Created user 'admin' with password: (\S+)", first_log)
    assert match, first_log
    assert p.login("admin", match.group(1))["id_token"]
    p.restart()
    assert "Created user 'admin'" not in p.log()


@pytest.mark.parametrize("args", [["tenants", "list"], ["whoami"]])
def test_read_commands_without_login_fail_clearly(
    platform: Platform, args: list[str], tmp_path: Path
) -> None:
    env = {**platform.env, "IMM_CONFIG": str(tmp_path / "none.json"), "IMM_API_URL": platform.url}
    result = subprocess.run(
        [sys.executable, "-m", "imm", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "401" in result.stderr
