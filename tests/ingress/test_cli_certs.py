"""``imm certs``: the user guide's certificate steps, run as a user would, then used for a
real call through the ingress with ``imm predict``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ingress_support import MakeIngress, MakeServer, host, needs_nginx

from imm.runtime.local.ingress import Ingress, Route

OPENSSL = shutil.which("openssl")


def imm(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMM_DATA_DIR": str(data_dir or "/nonexistent")}
    return subprocess.run(
        [sys.executable, "-m", "imm", *args], env=env, capture_output=True, text=True, timeout=120
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def make_tenant_ca(folder: Path) -> None:
    ok(imm("certs", "ca", "--out", str(folder), "--cn", "alpha CA"))


def make_client(folder: Path, ca: Path, cn: str = "client") -> Path:
    ok(imm("certs", "request", "--cn", cn, "--out", str(folder)))
    crt = folder / "client.crt"
    ok(imm("certs", "sign", str(folder / "client.csr"), "--ca-cert", str(ca / "ca.crt"),
           "--ca-key", str(ca / "ca.key"), "--out", str(crt)))  # fmt: skip
    return crt


def test_ca_and_request_write_private_keys_and_refuse_to_overwrite(tmp_path: Path) -> None:
    make_tenant_ca(tmp_path / "ca")
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    key = (tmp_path / "ca" / "ca.key").read_bytes()
    again = imm("certs", "ca", "--out", str(tmp_path / "ca"))
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert (tmp_path / "ca" / "ca.key").read_bytes() == key
    ok(imm("certs", "request", "--cn", "client", "--out", str(tmp_path / "c")))
    assert (tmp_path / "c" / "client.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "c" / "client.csr").read_text().startswith("-----BEGIN CERTIFICATE REQ")


@pytest.mark.parametrize("cn", ["a,b", "CN=x", " client", ""])
def test_request_refuses_a_cn_no_endpoint_could_admit(tmp_path: Path, cn: str) -> None:
    result = imm("certs", "request", "--cn", cn, "--out", str(tmp_path))
    assert result.returncode != 0
    assert "--cn" in result.stderr
    assert not list(tmp_path.iterdir())


def test_sign_refuses_a_ca_key_that_is_not_the_cas(tmp_path: Path) -> None:
    make_tenant_ca(tmp_path / "ca")
    make_tenant_ca(tmp_path / "other")
    ok(imm("certs", "request", "--cn", "client", "--out", str(tmp_path / "c")))
    result = imm("certs", "sign", str(tmp_path / "c" / "client.csr"),
                 "--ca-cert", str(tmp_path / "ca" / "ca.crt"),
                 "--ca-key", str(tmp_path / "other" / "ca.key"),
                 "--out", str(tmp_path / "c" / "client.crt"))  # fmt: skip
    assert result.returncode == 1
    assert "not the key of --ca-cert" in result.stderr
    assert not (tmp_path / "c" / "client.crt").exists()


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_openssl_verifies_the_chain(tmp_path: Path) -> None:
    make_tenant_ca(tmp_path / "ca")
    crt = make_client(tmp_path / "c", tmp_path / "ca")
    verify = subprocess.run(
        [OPENSSL, "verify", "-purpose", "sslclient", "-CAfile", str(tmp_path / "ca" / "ca.crt"),
         str(crt)], capture_output=True, text=True,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    subject = subprocess.run(
        [OPENSSL, "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", str(crt)],
        capture_output=True,
        text=True,
    )
    assert subject.stdout.strip() == "subject=CN=client"


def test_server_ca_says_when_the_platform_never_started(tmp_path: Path) -> None:
    result = imm("certs", "server-ca", data_dir=tmp_path)
    assert result.returncode == 1
    assert "imm up" in result.stderr


def _serve(ingress: Ingress, ca_dir: Path, port: int) -> None:
    ca_pem = (ca_dir / "ca.crt").read_text()
    ingress.start()
    ingress.apply([Route(host("demo", "alpha"), "alpha", "demo", ca_pem, "client", (port,))])


def _predict(ingress: Ingress, data_dir: Path, crt: Path, key: Path, x: Path) -> dict:
    server_ca = ok(imm("certs", "server-ca", data_dir=data_dir)).strip()
    assert Path(server_ca) == ingress.pki.ca_path.resolve()
    out = ok(imm("predict", "--address", f"127.0.0.1:{ingress.listen[1]}",
                 "--server-name", host("demo", "alpha"), "--model-name", "demo",
                 "--ca-cert", server_ca, "--client-cert", str(crt), "--client-key", str(key),
                 "--input", str(x), "--output", "json"))  # fmt: skip
    return json.loads(out)


@needs_nginx
def test_the_user_guide_chain_is_admitted_by_the_ingress(
    tmp_path: Path, make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    make_tenant_ca(tmp_path / "ca")
    crt = make_client(tmp_path / "client", tmp_path / "ca")
    ingress = make_ingress(tmp_path / "data")
    _serve(ingress, tmp_path / "ca", make_server().port)
    x = np.array([[1, 2, 3]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    reply = _predict(ingress, tmp_path / "data", crt, tmp_path / "client" / "client.key",
                     tmp_path / "x.npy")  # fmt: skip
    assert reply["outputs"]["y"] == [[2.0, 4.0, 6.0]]


@needs_nginx
@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_an_openssl_csr_signed_by_imm_certs_is_admitted(
    tmp_path: Path, make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    """Users may keep their keys where openssl made them; only the CSR travels."""
    make_tenant_ca(tmp_path / "ca")
    key, csr, crt = tmp_path / "rsa.key", tmp_path / "rsa.csr", tmp_path / "rsa.crt"
    made = subprocess.run(
        [OPENSSL, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=acme/CN=client",
         "-keyout", str(key), "-out", str(csr)], capture_output=True, text=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    ok(imm("certs", "sign", str(csr), "--ca-cert", str(tmp_path / "ca" / "ca.crt"),
           "--ca-key", str(tmp_path / "ca" / "ca.key"), "--out", str(crt)))  # fmt: skip
    ingress = make_ingress(tmp_path / "data")
    _serve(ingress, tmp_path / "ca", make_server().port)
    np.save(tmp_path / "x.npy", np.zeros((1, 3), dtype=np.float32))
    reply = _predict(ingress, tmp_path / "data", crt, key, tmp_path / "x.npy")
    assert reply["outputs"]["y"] == [[0.0, 0.0, 0.0]]
