"""``imm certs``: the certificates of mutual TLS, made with ``cryptography`` (no openssl).

A tenant owns a CA (its certificate goes to ``imm tenants create --ca-cert``); clients get
certificates signed by it whose subject CN is an endpoint's ``subjectName``. The platform's
own CA, which signs the ingress's server certificate, is what clients verify the ingress by.
"""

from __future__ import annotations

from pathlib import Path

import typer

from imm.cli.common import fail
from imm.files import write_atomic, write_private

app = typer.Typer(
    help="Make a tenant CA, client keys and CSRs, sign them; show the platform CA.",
    no_args_is_help=True,
)


def _check_new(force: bool, *paths: Path) -> None:
    """Never clobber a key by accident: refuses before anything is written."""
    for path in paths:
        if path.exists() and not force:
            raise fail(f"{path} exists; pass --force to replace it")


def _write_key(path: Path, data: bytes) -> None:
    write_private(path, data)  # created 0600, never chmod-ed after
    typer.echo(f"wrote {path}")


def _write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o644)
    typer.echo(f"wrote {path}")


@app.command()
def ca(
    out: Path = typer.Option(..., "--out", help="folder for ca.crt and ca.key"),
    cn: str = typer.Option("IMM tenant CA", "--cn", help="subject CN of the CA"),
    days: int = typer.Option(3650, "--days", min=1, help="validity in days"),
    force: bool = typer.Option(False, "--force", help="replace existing files"),
) -> None:
    """Create a tenant CA: ca.crt (give it to `imm tenants create --ca-cert`), ca.key (0600)."""
    from imm import certs

    _check_new(force, out / "ca.key", out / "ca.crt")
    key = certs.new_key()
    cert = certs.create_ca(cn, key, days=days)
    _write_key(out / "ca.key", certs.key_pem(key))
    _write_public(out / "ca.crt", certs.cert_pem(cert))


@app.command()
def request(
    cn: str = typer.Option(..., "--cn", help="subject CN: the endpoint's subjectName"),
    out: Path = typer.Option(..., "--out", help="folder for the key and the CSR"),
    name: str = typer.Option("client", "--name", help="file stem: NAME.key and NAME.csr"),
    force: bool = typer.Option(False, "--force", help="replace existing files"),
) -> None:
    """Create a client key (NAME.key, 0600) and a certificate signing request (NAME.csr)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from imm import certs
    from imm.domain.errors import InvalidInput
    from imm.domain.names import check_subject_name

    try:
        check_subject_name(cn)
    except InvalidInput as exc:
        raise fail(f"--cn: {str(exc).replace('subjectName', 'the CN')}") from None
    _check_new(force, out / f"{name}.key", out / f"{name}.csr")
    key = certs.new_key()
    csr = certs.create_csr(cn, key)
    _write_key(out / f"{name}.key", certs.key_pem(key))
    _write_public(out / f"{name}.csr", csr.public_bytes(Encoding.PEM))


@app.command()
def sign(
    csr_file: Path = typer.Argument(
        ..., metavar="CSR", exists=True, dir_okay=False, help="PEM certificate signing request"
    ),
    ca_cert: Path = typer.Option(..., "--ca-cert", exists=True, dir_okay=False),
    ca_key: Path = typer.Option(..., "--ca-key", exists=True, dir_okay=False),
    out: Path = typer.Option(..., "--out", help="file for the client certificate (PEM)"),
    days: int = typer.Option(365, "--days", min=1, help="validity in days"),
    force: bool = typer.Option(False, "--force", help="replace an existing file"),
) -> None:
    """Sign a client CSR with the tenant CA (as `openssl x509 -req -CA ... -CAkey ...`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from imm import certs
    from imm.domain.errors import InvalidInput

    _check_new(force, out)
    try:
        csr = x509.load_pem_x509_csr(csr_file.read_bytes())
        cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        key = load_pem_private_key(ca_key.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise fail(f"cannot read the CSR, CA certificate or CA key: {exc}") from None
    if cert.public_key() != key.public_key():
        raise fail("--ca-key is not the key of --ca-cert")
    try:
        signed = certs.sign_csr(csr, cert, key, days=days)  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise fail(str(exc)) from None
    _write_public(out, certs.cert_pem(signed))


@app.command("server-ca")
def server_ca() -> None:
    """Print the path of the platform CA, which signs the ingress's server certificate.

    Clients verify endpoints with it, e.g.

    imm predict -a 127.0.0.1:8443 --server-name ENDPOINT-TENANT.imm.localhost -m MODEL
    --ca-cert "$(imm certs server-ca)" --client-cert client.crt --client-key client.key

    It lives in the data directory (IMM_DATA_DIR), created when the platform first starts.
    """
    from imm.config import load_settings

    path = load_settings().platform_ca_path.resolve()
    if not path.is_file():
        raise fail(f"{path} does not exist yet: start the platform once (`imm up`)")
    typer.echo(str(path))
