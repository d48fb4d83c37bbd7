"""Who the ingress admits: real nginx, real TLS handshakes, real model servers.

Two tenants each have an endpoint ``demo`` whose admitted subject is ``client``; tenant
alpha also has an endpoint scaled to 0 and one with no ready replica. Every refusal must
reach a gRPC client as a gRPC status, never as the INTERNAL a bare HTTP error would give.
"""

from __future__ import annotations

import os
import pwd
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography.x509.oid import NameOID
from ingress_support import (
    ModelServer,
    TenantCa,
    channel,
    error_of,
    host,
    model_base,
    needs_nginx,
    new_ingress,
    predict,
    start_server,
)

from imm.runtime.local import nginx_proc
from imm.runtime.local.ingress import Ingress, Route

pytestmark = needs_nginx

CN, ORG = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME


@dataclass
class Setup:
    ingress: Ingress
    alpha: TenantCa
    beta: TenantCa
    server_ca: bytes

    @property
    def port(self) -> int:
        return self.ingress.listen[1]

    def chan(
        self, endpoint: str, tenant: str, client: tuple[bytes, bytes] | None, **kw: object
    ) -> grpc.Channel:
        return channel(self.port, host(endpoint, tenant), self.server_ca, client, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("mtls")
    servers: list[ModelServer] = []
    ingress = new_ingress(tmp / "data")
    try:
        a = start_server(model_base(tmp / "alpha", 0.0), tmp, servers).port
        b = start_server(model_base(tmp / "beta", 100.0), tmp, servers).port
        alpha, beta = TenantCa("alpha"), TenantCa("beta")
        ingress.start()
        ingress.apply(
            [
                Route(host("demo", "alpha"), "alpha", "demo", alpha.pem, "client", (a,)),
                Route(host("demo", "beta"), "beta", "demo", beta.pem, "client", (b,)),
                Route(host("off", "alpha"), "alpha", "off", alpha.pem, "client", (), True),
                Route(host("idle", "alpha"), "alpha", "idle", alpha.pem, "client", ()),
            ]
        )
        yield Setup(ingress, alpha, beta, ingress.pki.ca_path.read_bytes())
    finally:
        ingress.stop(timeout=5)
        for server in servers:
            server.kill()


X = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)


def test_the_admitted_subject_gets_the_models_outputs(setup: Setup) -> None:
    with setup.chan("demo", "alpha", setup.alpha.client("client")) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)
    with setup.chan("demo", "beta", setup.beta.client("client")) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X + 100)


def test_another_subject_of_the_same_ca_is_permission_denied(setup: Setup) -> None:
    with setup.chan("demo", "alpha", setup.alpha.client("other")) as chan:
        error = error_of(chan)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not admitted by endpoint demo" in error.details()


@pytest.mark.parametrize(
    "rdns",
    [
        [[(ORG, "acme")], [(CN, "client")]],
        [[(CN, "client")], [(ORG, "acme")]],
        [[(ORG, "acme"), (CN, "client")]],  # one multi-valued RDN
    ],
    ids=["org-first", "cn-first", "multi-valued"],
)
def test_other_attributes_beside_the_cn_do_not_matter(setup: Setup, rdns: list) -> None:
    with setup.chan("demo", "alpha", setup.alpha.client_named(*rdns)) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)


@pytest.mark.parametrize(
    "rdns",
    [
        [[(CN, "clientx")]],
        [[(CN, "xclient")]],
        [[(CN, "client ")]],
        [[(CN, "client,O=x")]],
        [[(ORG, "a,CN=client")], [(CN, "other")]],
        [[(CN, "other")], [(ORG, "x,CN=client")]],
        [[(ORG, "CN=client")]],
        [[(ORG, "acme")]],
        [[(CN, "client")], [(CN, "other")]],  # two CNs: which one counts would be a guess
        [[(CN, "other")], [(CN, "client")]],
    ],
    ids=lambda rdns: ";".join(f"{o._name}={v}" for r in rdns for o, v in r),
)
def test_only_a_cn_equal_to_the_subject_name_is_admitted(setup: Setup, rdns: list) -> None:
    with setup.chan("demo", "alpha", setup.alpha.client_named(*rdns)) as chan:
        assert error_of(chan).code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_certificate_of_another_ca_is_unauthenticated(setup: Setup) -> None:
    stranger = TenantCa("stranger")
    with setup.chan("demo", "alpha", stranger.client("client")) as chan:
        error = error_of(chan)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "tenant CA" in error.details()


def test_no_client_certificate_is_unauthenticated(setup: Setup) -> None:
    with setup.chan("demo", "alpha", None) as chan:
        assert error_of(chan).code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_tenant_a_certificate_is_refused_by_tenant_b_even_with_the_same_cn(
    setup: Setup,
) -> None:
    with setup.chan("demo", "beta", setup.alpha.client("client")) as chan:
        assert error_of(chan).code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_authority_other_than_the_verified_server_name_is_refused(setup: Setup) -> None:
    """TLS for alpha's endpoint (verified with alpha's CA), request for beta's: nginx
    answers 421 rather than serve beta's endpoint to alpha's client."""
    client = setup.alpha.client("client")
    with setup.chan("demo", "alpha", client, authority=host("demo", "beta")) as chan:
        assert error_of(chan).code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_unknown_host_is_refused_in_the_handshake(setup: Setup) -> None:
    with setup.chan("nope", "alpha", setup.alpha.client("client")) as chan:
        assert error_of(chan).code() == grpc.StatusCode.UNAVAILABLE
    for server_name in (host("nope", "alpha"), None):  # unknown SNI, and no SNI at all
        context = ssl.create_default_context(cadata=setup.server_ca.decode())
        context.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", setup.port), timeout=10) as sock,
            pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"),
        ):
            context.wrap_socket(sock, server_hostname=server_name)


def test_the_server_certificate_verifies_for_endpoint_hosts(setup: Setup) -> None:
    context = ssl.create_default_context(cadata=setup.server_ca.decode())
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", setup.port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=host("demo", "alpha")) as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"


def test_an_endpoint_scaled_to_0_is_unavailable_and_says_so(setup: Setup) -> None:
    with setup.chan("off", "alpha", setup.alpha.client("client")) as chan:
        error = error_of(chan)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "endpoint off is scaled to 0"


def test_an_endpoint_without_ready_replicas_is_unavailable(setup: Setup) -> None:
    with setup.chan("idle", "alpha", setup.alpha.client("client")) as chan:
        error = error_of(chan)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "endpoint idle has no ready replica"


def test_refusals_still_check_the_client_first(setup: Setup) -> None:
    """A scaled-down endpoint tells nothing to a client it would not admit."""
    with setup.chan("off", "alpha", setup.alpha.client("other")) as chan:
        assert error_of(chan).code() == grpc.StatusCode.PERMISSION_DENIED


def test_large_tensors_pass(setup: Setup) -> None:
    big = np.ones((1_000_000, 3), dtype=np.float32)  # 12 MB each way
    options = (("grpc.max_receive_message_length", 64 * 1024 * 1024),)
    with setup.chan("demo", "alpha", setup.alpha.client("client"), options=options) as chan:
        np.testing.assert_array_equal(predict(chan, big), 2 * big)


def test_a_request_over_the_body_limit_is_resource_exhausted(setup: Setup) -> None:
    huge = np.ones((6_000_000, 3), dtype=np.float32)  # 72 MB > 64m
    client = setup.alpha.client("client")
    with setup.chan("demo", "alpha", client) as chan, pytest.raises(grpc.RpcError) as caught:
        predict(chan, huge)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()


def test_nginx_writes_its_files_in_its_own_folder(setup: Setup) -> None:
    work = setup.ingress.work_dir
    assert (work / "nginx.conf").is_file()
    assert (work / "error.log").is_file()
    assert int((work / "nginx.pid").read_text()) == setup.ingress.pid


@pytest.mark.skipif(os.geteuid() != 0, reason="workers keep the user of an unprivileged nginx")
def test_workers_run_as_nobody_when_nginx_runs_as_root(setup: Setup) -> None:
    assert setup.ingress.pid is not None
    workers = nginx_proc.workers(setup.ingress.pid)
    assert workers
    nobody = pwd.getpwnam("nobody").pw_uid
    for worker in workers:
        status = Path(f"/proc/{worker.pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert {int(u) for u in uids} == {nobody}
