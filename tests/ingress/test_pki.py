"""The platform PKI: one CA per data directory, a server certificate kept current."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from imm.config import load_settings
from imm.runtime.local.pki import PlatformPki


def sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName))


def test_first_ensure_makes_a_ca_and_a_server_certificate_for_the_domain(tmp_path: Path) -> None:
    pki = PlatformPki(tmp_path / "pki", "imm.localhost")
    assert pki.ensure()
    assert pki.ca_path == load_settings(data_dir=tmp_path).platform_ca_path
    assert pki.ca_key_path.stat().st_mode & 0o777 == 0o600
    assert pki.key_path.stat().st_mode & 0o777 == 0o600
    assert sans(pki.cert_path) == ["*.imm.localhost", "imm.localhost"]
    ca = x509.load_pem_x509_certificate(pki.ca_path.read_bytes())
    cert = x509.load_pem_x509_certificate(pki.cert_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_a_second_ensure_changes_nothing(tmp_path: Path) -> None:
    pki = PlatformPki(tmp_path / "pki", "imm.localhost")
    pki.ensure()
    files = {p: p.read_bytes() for p in (pki.ca_path, pki.ca_key_path, pki.cert_path)}
    assert not PlatformPki(tmp_path / "pki", "imm.localhost").ensure()
    assert {p: p.read_bytes() for p in files} == files


def test_a_new_domain_gets_a_new_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    PlatformPki(tmp_path / "pki", "imm.localhost").ensure()
    ca = (tmp_path / "pki" / "ca.crt").read_bytes()
    # The settings normalise the domain; the PKI takes it as they give it.
    pki = PlatformPki(tmp_path / "pki", load_settings(domain="Models.Example.COM.").domain)
    assert pki.ensure()
    assert pki.ca_path.read_bytes() == ca
    assert sans(pki.cert_path) == ["*.models.example.com", "models.example.com"]


def test_a_certificate_near_its_expiry_is_reissued(tmp_path: Path) -> None:
    pki = PlatformPki(tmp_path / "pki", "imm.localhost", server_days=365)
    pki.ensure()
    first = pki.cert_path.read_bytes()
    pki.renew_before = timedelta(days=400)  # as if fewer than 400 days were left
    assert pki.ensure()
    assert pki.cert_path.read_bytes() != first


@pytest.mark.parametrize("damage", ["server.key", "server.crt"])
def test_a_server_certificate_that_does_not_match_its_key_is_reissued(
    tmp_path: Path, damage: str
) -> None:
    pki = PlatformPki(tmp_path / "pki", "imm.localhost")
    pki.ensure()
    other = PlatformPki(tmp_path / "other", "imm.localhost")
    other.ensure()
    (pki.directory / damage).write_bytes((other.directory / damage).read_bytes())
    assert pki.ensure()
    x509.load_pem_x509_certificate(pki.cert_path.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(pki.ca_path.read_bytes())
    )


def test_a_lost_ca_key_means_a_new_ca_and_server_certificate(tmp_path: Path) -> None:
    pki = PlatformPki(tmp_path / "pki", "imm.localhost")
    pki.ensure()
    old_ca = pki.ca_path.read_bytes()
    pki.ca_key_path.unlink()
    assert pki.ensure()
    assert pki.ca_path.read_bytes() != old_ca
    x509.load_pem_x509_certificate(pki.cert_path.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(pki.ca_path.read_bytes())
    )
