"""Certificate helpers (``cryptography``): tenant CA validation, CAs, CSRs and signing."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from imm.domain.errors import InvalidInput

PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
MAX_CERT_TEXT = 64 * 1024


@dataclass(frozen=True)
class CaInfo:
    pem: str
    subject: str
    not_after: datetime


def _pem_bytes(text: str) -> bytes:
    """Accept PEM text or base64 of PEM (as the original platform's clients sent it)."""
    raw = text.strip().encode()
    if PEM_BEGIN in raw:
        return raw
    try:
        decoded = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if PEM_BEGIN in decoded:
        return decoded
    raise InvalidInput("cert must be a PEM X.509 certificate, as PEM text or base64 of PEM")


def _ca_info(cert: x509.Certificate, pem: str) -> CaInfo:
    return CaInfo(
        pem=pem, subject=cert.subject.rfc4514_string(), not_after=cert.not_valid_after_utc
    )


def describe(pem: str) -> CaInfo:
    """Subject and expiry of a stored (already validated) certificate."""
    return _ca_info(x509.load_pem_x509_certificate(pem.encode()), pem)


def load_ca_certificate(text: object, now: datetime | None = None) -> CaInfo:
    """Validate a tenant CA; the 400 message says which rule failed."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("cert is required: the tenant's CA certificate in PEM")
    if len(text) > MAX_CERT_TEXT:
        raise InvalidInput(f"cert is longer than {MAX_CERT_TEXT} characters")
    try:
        cert = x509.load_pem_x509_certificate(_pem_bytes(text))
    except ValueError:
        raise InvalidInput("cert is not a parseable PEM X.509 certificate") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    except ValueError:
        raise InvalidInput("cert has malformed extensions") from None
    if not is_ca:
        raise InvalidInput("cert is not a CA certificate (basicConstraints CA:TRUE is missing)")
    now = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        raise InvalidInput(f"cert expired on {cert.not_valid_after_utc.isoformat()}")
    if cert.not_valid_before_utc > now:
        raise InvalidInput(f"cert is not valid before {cert.not_valid_before_utc.isoformat()}")
    return _ca_info(cert, cert.public_bytes(Encoding.PEM).decode())


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def create_ca(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    days: int = 3650,
    not_before: datetime | None = None,
) -> x509.Certificate:
    """A self-signed CA that may sign client and server certificates."""
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def create_csr(cn: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder().subject_name(_name(cn)).sign(key, hashes.SHA256())
    )


def sign_csr(
    csr: x509.CertificateSigningRequest,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int = 365,
    server_names: list[str] | None = None,
) -> x509.Certificate:
    """Issue a client certificate (or a server one when ``server_names`` is given)."""
    if not csr.is_signature_valid:
        raise InvalidInput("the CSR's signature does not verify")
    start = datetime.now(UTC) - timedelta(minutes=5)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if server_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in server_names]), False
        )
    return builder.sign(ca_key, hashes.SHA256())
