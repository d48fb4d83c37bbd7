"""The issuer's signing key: generated once, kept in the data directory, published as JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from imm.files import write_private

ALGORITHM = "RS256"


def _thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 key id: stable for the key, different for every other key."""
    canonical = json.dumps(
        {k: public_jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class SigningKey:
    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._private = private_key
        self.public_jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        self.kid = _thumbprint(self.public_jwk)
        self.public_jwk.update({"kid": self.kid, "use": "sig", "alg": ALGORITHM})

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{path} does not hold an RSA private key")
            return cls(key)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
        return cls(key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str, audience: str, issuer: str) -> dict[str, Any]:
        """For the issuer's own refresh tokens; raises jwt.InvalidTokenError."""
        return jwt.decode(
            token,
            self._private.public_key(),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "sub"]},
        )
