"""Every way a bearer token can be wrong is a 401 that says which check failed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fixtures.platform import Platform


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Forger:
    """Signs tokens with the platform's real issuer key, or deliberately wrong ones."""

    def __init__(self, platform: Platform) -> None:
        pem = (platform.data_dir / "oidc" / "signing-key.pem").read_bytes()
        self.key = serialization.load_pem_private_key(pem, password=None)
        self.kid = httpx.get(f"{platform.issuer}/jwks").json()["keys"][0]["kid"]
        self.issuer = platform.issuer

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "admin",
            "aud": "imm-cli",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "groups": ["admin"],
            "email": "admin@imm.local",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self, key: Any = None, kid: str | None = None, alg: str = "RS256", **claims: Any
    ) -> str:
        return jwt.encode(
            self.claims(**claims), key or self.key, algorithm=alg, headers={"kid": kid or self.kid}
        )


def hs256_with_public_key(forger: Forger) -> str:
    public_pem = forger.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": forger.kid}).encode())
    payload = b64url(json.dumps(forger.claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def alg_none(forger: Forger) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": forger.kid}).encode())
    return f"{header}.{b64url(json.dumps(forger.claims()).encode())}."


def tampered_signature(forger: Forger) -> str:
    head, payload, signature = forger.sign().split(".")
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
    flipped[10] ^= 0xFF
    return f"{head}.{payload}.{b64url(bytes(flipped))}"


def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


CASES: list[tuple[str, Callable[[Forger], str | None], str]] = [
    ("no header", lambda f: None, "missing"),
    ("not a JWT", lambda f: "this-is-not-a-jwt", "well-formed"),
    ("bad signature", tampered_signature, "signature"),
    ("signed by another key", lambda f: f.sign(key=other_key()), "signature"),
    ("alg none", alg_none, "algorithm"),
    ("HS256 signed with the public key", hs256_with_public_key, "algorithm"),
    (
        "expired",
        lambda f: f.sign(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "expired",
    ),
    ("not yet valid", lambda f: f.sign(nbf=int(time.time()) + 3600), "not valid yet"),
    ("wrong issuer", lambda f: f.sign(iss="https://evil.example/oidc"), "issuer"),
    ("wrong audience", lambda f: f.sign(aud="someone-else"), "audience"),
    ("no expiry", lambda f: f.sign(exp=None), "exp"),
    ("unknown kid", lambda f: f.sign(key=other_key(), kid="kid-nobody-publishes"), "key"),
]


@pytest.mark.parametrize(("case", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_tokens_get_401_naming_the_failed_check(
    platform: Platform, case: str, make: Callable[[Forger], str | None], reason: str
) -> None:
    token = make(Forger(platform))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{platform.url}/tenants", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    detail = response.json()["detail"]
    assert reason in detail, detail
    if token:
        assert token not in response.text
        assert token.split(".")[0] not in response.text


def test_a_correctly_forged_token_is_accepted(platform: Platform) -> None:
    """The forger itself is right: the same key and claims pass, so the cases above test
    exactly the one thing each of them changes."""
    token = Forger(platform).sign()
    response = httpx.get(f"{platform.url}/tenants", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def test_wrong_scheme_is_401(platform: Platform) -> None:
    response = httpx.get(f"{platform.url}/tenants", headers={"Authorization": "Basic YWRtaW4="})
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_issued_tokens_carry_the_documented_claims(platform: Platform) -> None:
    platform.add_user("carol", "team-x", "team-y")
    tokens = platform.login("carol")
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["iss"] == platform.issuer
    assert claims["aud"] == "imm-cli"
    assert claims["email"] == "carol@imm.local"
    assert sorted(claims["groups"]) == ["team-x", "team-y"]
    assert 3500 <= claims["exp"] - claims["iat"] <= 3600
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"


def test_refresh_token_gives_a_new_id_token(platform: Platform) -> None:
    platform.add_user("dave", "team-z")
    tokens = platform.login("dave")
    refreshed = httpx.post(
        f"{platform.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "imm-cli",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()["id_token"]
    me = httpx.get(f"{platform.url}/auth/whoami", headers={"Authorization": f"Bearer {new}"})
    assert me.json()["username"] == "dave"
    # An ID token is not a refresh token.
    misuse = httpx.post(
        f"{platform.issuer}/token",
        data={"grant_type": "refresh_token", "client_id": "imm-cli", "refresh_token": new},
    )
    assert misuse.status_code == 400
    assert misuse.json()["error"] == "invalid_grant"


def test_password_grant_refuses_wrong_password_and_unknown_client(platform: Platform) -> None:
    platform.add_user("erin", "team-q")
    wrong = httpx.post(
        f"{platform.issuer}/token",
        data={
            "grant_type": "password",
            "client_id": "imm-cli",
            "username": "erin",
            "password": "not-her-password",
        },
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    unknown_client = httpx.post(
        f"{platform.issuer}/token",
        data={
            "grant_type": "password",
            "client_id": "other",
            "username": "erin",
            "password": "user-password-for-tests",
        },
    )
    assert unknown_client.status_code == 401
    assert unknown_client.json()["error"] == "invalid_client"
