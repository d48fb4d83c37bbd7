"""The platform PKI: a CA made once per data directory and the ingress's server certificate.

Clients verify the ingress with the platform CA (``imm certs server-ca`` prints its path),
so the CA is kept across restarts and domain changes; only the server certificate for
``*.<domain>`` is reissued, when the domain changes, when it nears expiry, or when it no
longer matches its key or the CA (a crash between two writes, a CA made anew).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from imm import certs
from imm.files import write_atomic

log = logging.getLogger("imm.runtime.pki")

CA_NAME = "IMM platform CA"
CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = timedelta(days=30)


class PlatformPki:
    """``directory`` holds ca.crt, ca.key (0600), server.crt and server.key (0600);
    ``domain`` as ``Settings.domain`` gives it (lower case, no trailing dot)."""

    def __init__(
        self,
        directory: Path,
        domain: str,
        server_days: int = SERVER_DAYS,
        renew_before: timedelta = RENEW_BEFORE,
    ) -> None:
        self.directory = directory
        self.domain = domain
        self.server_days = server_days
        self.renew_before = renew_before

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def cert_path(self) -> Path:
        return self.directory / "server.crt"

    @property
    def key_path(self) -> Path:
        return self.directory / "server.key"

    @property
    def server_names(self) -> list[str]:
        return [f"*.{self.domain}", self.domain]

    def ensure(self, now: datetime | None = None) -> bool:
        """Create what is missing or stale; returns whether the server certificate changed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        now = now or datetime.now(UTC)
        ca, ca_key = self._load_ca()
        if ca is None or ca_key is None:
            ca, ca_key = self._create_ca()
        if not self._server_is_current(ca, now):
            self._issue_server(ca, ca_key)
            return True
        return False

    def _load_ca(self) -> tuple[x509.Certificate | None, PrivateKeyTypes | None]:
        try:
            ca = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            key = load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
        except (OSError, ValueError):
            return None, None
        if ca.public_key() != key.public_key():
            return None, None
        return ca, key

    def _create_ca(self) -> tuple[x509.Certificate, PrivateKeyTypes]:
        log.info("creating the platform CA in %s", self.directory)
        key = certs.new_key()
        ca = certs.create_ca(CA_NAME, key, days=CA_DAYS)
        write_atomic(self.ca_key_path, certs.key_pem(key), 0o600)
        write_atomic(self.ca_path, certs.cert_pem(ca), 0o644)
        return ca, key

    def _server_is_current(self, ca: x509.Certificate, now: datetime) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            key = load_pem_private_key(self.key_path.read_bytes(), password=None)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            cert.verify_directly_issued_by(ca)
        except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            return False
        return (
            cert.public_key() == key.public_key()
            and sorted(san.get_values_for_type(x509.DNSName)) == sorted(self.server_names)
            and cert.not_valid_after_utc - self.renew_before > now
        )

    def _issue_server(self, ca: x509.Certificate, ca_key: PrivateKeyTypes) -> None:
        log.info("issuing the ingress certificate for %s", ", ".join(self.server_names))
        key = certs.new_key()
        csr = certs.create_csr(self.server_names[0], key)
        cert = certs.sign_csr(
            csr,
            ca,
            ca_key,
            days=self.server_days,
            server_names=self.server_names,  # type: ignore[arg-type]
        )
        write_atomic(self.key_path, certs.key_pem(key), 0o600)
        write_atomic(self.cert_path, certs.cert_pem(cert), 0o644)
