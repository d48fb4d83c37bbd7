"""Bearer-token verification against an OpenID Connect issuer's published keys.

Any standard issuer works (Dex in production, the built-in one on a single machine): keys
come from the ``jwks_uri`` named by the issuer's discovery document, are cached, and are
fetched again once when a token names a key id the cache does not hold, so key rotation at
the issuer needs no restart here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from imm.domain.errors import Unauthenticated

# Asymmetric algorithms only: HMAC would let anyone holding the public key forge tokens,
# and "none" is no signature at all.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
REFETCH_INTERVAL = 10.0  # at most one JWKS refetch per this many seconds for unknown kids
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat


@dataclass(frozen=True)
class Principal:
    """Who is asking, as the token says."""

    subject: str
    username: str
    email: str | None
    groups: frozenset[str] = field(default_factory=frozenset)
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


JwksSource = Callable[[], dict[str, Any]]


def discovery_jwks_source(issuer: str, timeout: float = 10.0) -> JwksSource:
    """JWKS found through ``<issuer>/.well-known/openid-configuration``."""
    jwks_uri: str | None = None

    def fetch() -> dict[str, Any]:
        nonlocal jwks_uri
        with httpx.Client(timeout=timeout) as client:
            if jwks_uri is None:
                doc = client.get(f"{issuer}/.well-known/openid-configuration")
                doc.raise_for_status()
                jwks_uri = doc.json()["jwks_uri"]
            response = client.get(jwks_uri)
            response.raise_for_status()
            return response.json()

    return fetch


class TokenVerifier:
    """Checks signature, ``exp``, ``nbf``, ``iss`` and ``aud``; says which check failed."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks_source: JwksSource,
        groups_claim: str = "groups",
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.groups_claim = groups_claim
        self._jwks_source = jwks_source
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        try:
            jwks = jwt.PyJWKSet.from_dict(self._jwks_source())
        except (httpx.HTTPError, KeyError, ValueError, jwt.PyJWKSetError) as exc:
            raise Unauthenticated(
                f"cannot fetch the issuer's signing keys ({type(exc).__name__})"
            ) from None
        self._keys = {k.key_id: k for k in jwks.keys if k.key_id}
        self._fetched_at = time.monotonic()

    def _key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            key = self._keys.get(kid)
            if key is None and (
                not self._keys or time.monotonic() - self._fetched_at >= REFETCH_INTERVAL
            ):
                self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token is signed with a key the issuer does not publish")
        return key

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthenticated("token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated(f"token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token header has no key id (kid)")
        key = self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"token audience is not {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"token issuer is not {self.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"token is invalid ({type(exc).__name__})") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        groups = claims.get(self.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            groups = []
        username = (
            claims.get("preferred_username") or claims.get("name") or claims.get("email")
        ) or claims["sub"]
        return Principal(
            subject=str(claims["sub"]),
            username=str(username),
            email=claims.get("email"),
            groups=frozenset(str(g) for g in groups),
            claims=claims,
        )
