"""The Ingress's subject check, run by a real nginx exactly as ingress-nginx renders it.

ingress-nginx turns ``auth-tls-match-cn`` into
``if ( $ssl_client_s_dn !~ <value | Go %q> ) { return 403 ...; }`` inside the server block;
nginx matches with PCRE against OpenSSL's RFC 2253 DN. This test builds that server block
around the runtime's annotation value and sends real mTLS requests with real certificates,
so the escaping and anchoring are checked by the engines that will run them.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imm.runtime.kubernetes.subject import match_cn

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

CN, ORG = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME


def go_quote(text: str) -> str:
    """Go's %q for ASCII text, as ingress-nginx's template ``quote`` writes it."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Pki:
    dir: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    @classmethod
    def create(cls, directory: Path) -> Pki:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(CN, "test tenant CA")])
        cert = (
            cls._builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, cert)

    @staticmethod
    def _builder(
        subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
        )

    def issue(self, stem: str, subject: x509.Name, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(subject, self.ca.subject, key.public_key()).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        crt, pem_key = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return crt, pem_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ingress:
    port: int
    pki: Pki

    def status_for(self, subject: x509.Name) -> int:
        crt, key = self.pki.issue("client", subject)
        context = ssl.create_default_context(cafile=str(self.pki.dir / "ca.crt"))
        context.load_cert_chain(crt, key)
        conn = http.client.HTTPSConnection("localhost", self.port, context=context, timeout=10)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status
        finally:
            conn.close()


IngressFor = Callable[[str], Ingress]


@pytest.fixture(scope="module")
def ingress_for(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngressFor]:
    """``ingress_for(subject_name)``: an nginx server block as ingress-nginx would render it,
    one nginx per subject name, kept for the module."""
    started: dict[str, tuple[subprocess.Popen[bytes], Ingress]] = {}

    def start(subject_name: str) -> Ingress:
        if subject_name in started:
            return started[subject_name][1]
        directory = tmp_path_factory.mktemp("nginx")
        pki = Pki.create(directory)
        crt, key = pki.issue("server", x509.Name([x509.NameAttribute(CN, "localhost")]), True)
        port = _free_port()
        (directory / "nginx.conf").write_text(
            f"""
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {directory};
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    ssl_client_certificate {directory}/ca.crt;
    ssl_verify_client on;
    ssl_verify_depth 1;
    if ( $ssl_client_s_dn !~ {go_quote(match_cn(subject_name))} ) {{
      return 403 "client certificate unauthorized";
    }}
    location / {{ return 200 "ok"; }}
  }}
}}
"""
        )
        assert NGINX is not None
        process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
            stderr=subprocess.PIPE,
        )
        started[subject_name] = (process, Ingress(port, pki))
        for _ in range(200):  # wait until it listens, or report why it did not start
            if process.poll() is not None:
                reason = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"nginx exited: {reason}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        return started[subject_name][1]

    yield start
    for process, _ in started.values():
        process.terminate()
        process.wait(timeout=10)


def _name(*rdns: list[tuple[x509.ObjectIdentifier, str]]) -> x509.Name:
    """A subject of the given RDNs, in the order they are encoded."""
    return x509.Name(
        [x509.RelativeDistinguishedName(x509.NameAttribute(o, v) for o, v in rdn) for rdn in rdns]
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (_name([(CN, "client")]), 200),
        (_name([(ORG, "Org")], [(CN, "client")]), 200),
        (_name([(CN, "client")], [(ORG, "Org")]), 200),
        (_name([(ORG, "x"), (CN, "client")]), 200),  # one multi-valued RDN
        (_name([(CN, "other")]), 403),
        (_name([(CN, "clientx")]), 403),
        (_name([(CN, "xclient")]), 403),
        (_name([(CN, "xCN=client")]), 403),
        (_name([(CN, "client,O=x")]), 403),
        (_name([(ORG, "a,CN=client")], [(CN, "other")]), 403),
        (_name([(CN, "other")], [(ORG, "a,CN=client")]), 403),
    ],
    ids=lambda v: v.rfc4514_string() if isinstance(v, x509.Name) else str(v),
)
def test_only_the_subject_name_is_admitted(
    ingress_for: IngressFor, subject: x509.Name, expected: int
) -> None:
    assert ingress_for("client").status_for(subject) == expected


@pytest.mark.parametrize(
    ("subject_name", "admitted", "refused"),
    [
        ("a b+c", "a b+c", "a b c"),
        ('we"ird\\<>;#', 'we"ird\\<>;#', "we"),
        ("#lead", "#lead", "lead"),
        ("café", "café", "cafe"),
        ("x.y*z?", "x.y*z?", "xxyzz"),
    ],
)
def test_special_characters_are_matched_literally(
    ingress_for: IngressFor, subject_name: str, admitted: str, refused: str
) -> None:
    ingress = ingress_for(subject_name)
    assert ingress.status_for(_name([(CN, admitted)])) == 200
    assert ingress.status_for(_name([(CN, refused)])) == 403
