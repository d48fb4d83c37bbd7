"""Token issuance of the built-in issuer: authorization codes with PKCE, refresh, password."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from imm.auth.issuer.keys import SigningKey
from imm.auth.issuer.users import USERS_FILE, User, UserFile

CODE_TTL = 300
REFRESH_TTL = 30 * 24 * 3600
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


class OAuthError(Exception):
    """An RFC 6749 error: ``error`` is the standard code, the message its description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class PendingCode:
    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    nonce: str | None
    expires: float


def is_loopback_redirect(uri: str) -> bool:
    """Native-app redirects (RFC 8252): plain http to a loopback address, any port."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not parts.fragment


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class BuiltinIssuer:
    def __init__(self, issuer: str, client_id: str, directory: Path, token_ttl: int) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.token_ttl = token_ttl
        self.key = SigningKey.load_or_create(directory / "signing-key.pem")
        self.users = UserFile(directory / USERS_FILE)
        self._codes: dict[str, PendingCode] = {}
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "groups", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["authorization_code", "refresh_token", "password"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "groups", "name"],
        }

    def check_client(self, client_id: str | None) -> None:
        if client_id != self.client_id:
            raise OAuthError("invalid_client", f"unknown client {client_id!r}", 401)

    def issue_code(
        self, client_id: str, redirect_uri: str, challenge: str, user: User, nonce: str | None
    ) -> str:
        code = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._codes = {c: p for c, p in self._codes.items() if p.expires > now}
            self._codes[code] = PendingCode(
                client_id, redirect_uri, challenge, user.name, nonce, now + CODE_TTL
            )
        return code

    def redeem_code(
        self, code: str, client_id: str, redirect_uri: str, verifier: str
    ) -> dict[str, Any]:
        with self._lock:
            pending = self._codes.pop(code, None)  # single use, whatever happens next
        if pending is None or pending.expires < time.monotonic():
            raise OAuthError("invalid_grant", "authorization code is unknown or expired")
        if pending.client_id != client_id or pending.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "client_id or redirect_uri does not match")
        if not verifier or not hmac.compare_digest(s256(verifier), pending.challenge):
            raise OAuthError("invalid_grant", "PKCE code_verifier does not match the challenge")
        user = self.users.get(pending.username)
        if user is None:
            raise OAuthError("invalid_grant", "user no longer exists")
        return self.tokens(user, pending.nonce)

    def password_grant(self, username: str, password: str) -> dict[str, Any]:
        user = self.users.authenticate(username, password)
        if user is None:
            raise OAuthError("invalid_grant", "wrong user name or password")
        return self.tokens(user)

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        try:
            claims = self.key.verify(refresh_token, f"{self.issuer}#refresh", self.issuer)
        except jwt.InvalidTokenError:
            raise OAuthError("invalid_grant", "refresh token is invalid or expired") from None
        user = self.users.get(claims["sub"])
        if user is None:
            raise OAuthError("invalid_grant", "user no longer exists")
        return self.tokens(user)

    def id_claims(self, user: User, nonce: str | None = None) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.name,
            "aud": self.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_ttl,
            "email": user.email,
            "email_verified": True,
            "name": user.name,
            "preferred_username": user.name,
            "groups": list(user.groups),
            "jti": secrets.token_urlsafe(16),  # two tokens issued in one second still differ
        }
        if nonce:
            claims["nonce"] = nonce
        return claims

    def tokens(self, user: User, nonce: str | None = None) -> dict[str, Any]:
        id_token = self.key.sign(self.id_claims(user, nonce))
        now = int(time.time())
        refresh = self.key.sign(
            {
                "iss": self.issuer,
                "sub": user.name,
                "aud": f"{self.issuer}#refresh",
                "iat": now,
                "exp": now + REFRESH_TTL,
                "jti": secrets.token_urlsafe(16),
            }
        )
        return {
            "access_token": id_token,
            "id_token": id_token,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "scope": "openid email groups profile offline_access",
        }
