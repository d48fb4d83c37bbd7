"""Changing routes under load: graceful reloads, draining old workers, dead replicas.

A client calls continuously while replicas are swapped or killed. nginx serves calls on
connections accepted before a reload with the old workers (which then tell the client,
with an HTTP/2 GOAWAY, to open a new connection), so a replica taken out of the ingress
may be stopped once ``wait_drained`` says the old workers are gone.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from ingress_support import (
    RETRY_UNAVAILABLE,
    CallLoop,
    MakeIngress,
    MakeServer,
    TenantCa,
    channel,
    host,
    needs_nginx,
    predict,
)

from imm.runtime.local import nginx_proc
from imm.runtime.local.ingress import Ingress, IngressError, Route

pytestmark = needs_nginx

X = np.ones((1, 3), np.float32)


def route(ca: TenantCa, *ports: int, endpoint: str = "demo") -> Route:
    return Route(host(endpoint, "alpha"), "alpha", endpoint, ca.pem, "client", ports)


def client_channel(ingress: Ingress, ca: TenantCa, *options: tuple[str, object]) -> grpc.Channel:
    server_ca = ingress.pki.ca_path.read_bytes()
    return channel(
        ingress.listen[1], host("demo", "alpha"), server_ca, ca.client("client"), options=options
    )


def test_swapping_replicas_under_load_drops_no_call(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    old, new = make_server(0.0), make_server(100.0)
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    ingress.apply([route(ca, old.port)])
    with client_channel(ingress, ca) as chan, CallLoop(chan) as loop:
        loop.wait_calls(100)
        assert ingress.apply([route(ca, new.port)])
        loop.wait_calls(50)
        assert ingress.wait_drained(60)
        loop.wait_calls(2)  # past any call that straddled the drain
        after_drain = len(loop.offsets)
        assert old.terminate() == 0
        loop.wait_calls(150)
    assert loop.failures == []
    assert loop.offsets[0] == 0.0
    assert set(loop.offsets[after_drain:]) == {100.0}


def _queued_bytes_to(port: int) -> int:
    """Bytes on their way to ``port`` that nobody has read yet: unread by the server, or
    still in the sender's queue when the server's receive window is full. (The server's
    socket may be IPv6 with mapped IPv4 addresses, so both tables are read.)"""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, remote, state, queues = line.split()[1:5]
            if state != "01":
                continue
            tx, rx = (int(q, 16) for q in queues.split(":"))
            if int(local.rsplit(":", 1)[1], 16) == port:
                total += rx
            elif int(remote.rsplit(":", 1)[1], 16) == port:
                total += tx
    return total


def test_wait_drained_waits_for_a_call_in_flight_on_the_old_configuration(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    old, new = make_server(0.0), make_server(100.0)
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    ingress.apply([route(ca, old.port)])
    big = np.ones((4000, 3), np.float32)  # 48 kB: unmistakable among HTTP/2 control frames
    results: list[object] = []
    with client_channel(ingress, ca) as chan:
        predict(chan, X)  # connected, and nginx keeps a connection to the replica
        os.kill(old.proc.pid, signal.SIGSTOP)  # the replica holds the next call
        try:
            call = threading.Thread(target=lambda: results.append(predict(chan, big)))
            call.start()
            for _ in range(1200):  # until the request waits in the stopped replica's socket
                if _queued_bytes_to(old.port) > 30_000:
                    break
                call.join(0.05)
            else:
                raise AssertionError("the call never reached the replica")
            assert ingress.apply([route(ca, new.port)])
            assert not ingress.wait_drained(0)  # an old worker still carries the call
            with client_channel(ingress, ca) as fresh:  # new connections: new configuration
                np.testing.assert_array_equal(predict(fresh, X), 2 * X + 100)
        finally:
            os.kill(old.proc.pid, signal.SIGCONT)
        call.join(60)
        assert ingress.wait_drained(60)
    assert len(results) == 1
    np.testing.assert_array_equal(results[0], 2 * big)


def test_a_killed_replica_costs_no_call_when_another_is_up(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    """nginx retries a call on the other replica when the dead one refuses the connection.
    A call that was already sent to the replica when it died cannot be retried by nginx
    (grpc_pass streams the request body, never buffers it), so the client retries
    UNAVAILABLE with a gRPC retry policy, as a client of a replicated service should."""
    first, second = make_server(0.0), make_server(0.0)
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    ingress.apply([route(ca, first.port, second.port)])
    with client_channel(ingress, ca, RETRY_UNAVAILABLE) as chan, CallLoop(chan) as loop:
        loop.wait_calls(100)
        second.kill()
        loop.wait_calls(200)
    assert loop.failures == []
    with client_channel(ingress, ca) as chan, CallLoop(chan) as loop:  # no retries now
        loop.wait_calls(100)
    assert loop.failures == []


def test_applying_the_same_routes_again_does_not_reload(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    server = make_server()
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    assert ingress.apply([route(ca, server.port)])
    assert ingress.pid is not None
    workers = {w.pid for w in nginx_proc.workers(ingress.pid)}
    assert not ingress.apply([route(ca, server.port)])
    assert {w.pid for w in nginx_proc.workers(ingress.pid)} == workers
    assert ingress.apply([])
    assert not ingress.apply([])


def test_a_configuration_nginx_refuses_leaves_the_running_one(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    server = make_server()
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    ingress.apply([route(ca, server.port)])
    listen = ingress.listen
    ingress.listen = ("127.0.0.1", 0)  # "invalid port": nginx -t says no
    with pytest.raises(IngressError, match="nginx refused"):
        ingress.apply([route(ca, server.port, endpoint="other")])
    ingress.listen = listen
    with client_channel(ingress, ca) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)
    assert ingress.apply([route(ca, server.port)]) is False  # still what runs


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"host": "demo-alpha.example.com"}, "not under the domain"),
        ({"subject_name": 'client"; return 200; #'}, "subject name"),
        ({"subject_name": " client"}, "subject name"),
        ({"subject_name": "cli\\ent"}, "subject name"),
        ({"subject_name": "$host"}, "subject name"),
        ({"tenant": "Alpha"}, "tenant"),
        ({"endpoint": "a_b"}, "endpoint"),
        ({"backends": (0,)}, "port"),
        ({"ca_pem": "not a certificate"}, "not a PEM certificate"),
    ],
)
def test_a_route_that_cannot_be_served_is_left_out_and_the_others_served(
    make_ingress: MakeIngress, make_server: MakeServer, change: dict[str, object], reason: str
) -> None:
    server = make_server()
    ca = TenantCa("alpha")
    bad = Route(**{**route(ca, server.port, endpoint="bad").__dict__, **change})  # type: ignore[arg-type]
    ingress = make_ingress()
    ingress.start()
    assert ingress.apply([bad, route(ca, server.port)])
    assert reason in ingress.rejected[(bad.tenant, bad.endpoint)]
    conf = (ingress.work_dir / "nginx.conf").read_text()
    # The bad route's own lines; not a bare "bad", which the server certificate's hex
    # fingerprint in the header comment may spell.
    assert f"endpoint {bad.endpoint}" not in conf
    assert f"__{bad.endpoint}" not in conf  # its upstream
    assert f"server_name {bad.host};" not in conf
    with client_channel(ingress, ca) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)


def test_a_host_served_already_is_not_taken_over(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    """Endpoint b-c of tenant a and endpoint b of tenant c-a share a host name: the first
    route keeps it, the other is left out."""
    first, second = make_server(0.0), make_server(100.0)
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    impostor = Route(host("demo", "alpha"), "other", "x", TenantCa("other").pem, "client",
                     (second.port,))  # fmt: skip
    ingress.apply([route(ca, first.port), impostor])
    assert "already served for alpha/demo" in ingress.rejected[("other", "x")]
    with client_channel(ingress, ca) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)


def test_routes_applied_before_start_are_served_from_the_start(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    server = make_server()
    ca = TenantCa("alpha")
    ingress = make_ingress()
    assert ingress.apply([route(ca, server.port)]) is False  # nothing runs yet
    ingress.start()
    with client_channel(ingress, ca) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)


def test_a_restart_kills_the_nginx_a_crashed_platform_left_behind(
    make_ingress: MakeIngress, make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    ca = TenantCa("alpha")
    crashed = make_ingress(tmp_path / "data")
    crashed.start()
    crashed.apply([route(ca, server.port)])
    master = crashed.pid
    assert master is not None
    workers = [w.pid for w in nginx_proc.workers(master)]
    os.kill(master, signal.SIGKILL)  # its workers live on, orphaned, holding the port
    crashed._process.wait(10)  # type: ignore[union-attr]  # reaped as a dead platform's would be
    assert all(nginx_proc.is_alive(pid) for pid in workers)
    assert (tmp_path / "data" / "ingress" / "nginx.pid").read_text().strip() == str(master)

    restarted = make_ingress(tmp_path / "data", port=crashed.listen[1])
    restarted.apply([route(ca, server.port)])
    restarted.start()
    assert not any(nginx_proc.is_alive(pid) for pid in workers)
    with client_channel(restarted, ca) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)


def test_an_nginx_that_died_is_started_again_by_the_next_apply(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    server = make_server()
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    ingress.apply([route(ca, server.port, endpoint="one")])
    master = ingress.pid
    assert master is not None
    os.killpg(master, signal.SIGKILL)  # master and workers, as an OOM killer might
    while nginx_proc.is_alive(master):  # dead (a zombie until the ingress reaps it)
        time.sleep(0.01)
    assert ingress.apply([route(ca, server.port)])
    assert ingress.pid not in (None, master)
    with client_channel(ingress, ca) as chan:
        np.testing.assert_array_equal(predict(chan, X), 2 * X)


PLATFORM = """
import sys, time
from pathlib import Path
from ingress_support import new_ingress
ingress = new_ingress(Path(sys.argv[1]))
ingress.start()
print(ingress.pid, flush=True)
time.sleep(600)
"""


def test_nginx_dies_with_a_platform_that_is_killed(tmp_path: Path) -> None:
    platform = subprocess.Popen(
        [sys.executable, "-c", PLATFORM, str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    try:
        assert platform.stdout is not None
        master = int(platform.stdout.readline())
        workers = [w.pid for w in nginx_proc.workers(master)]
        assert workers
        platform.kill()
        platform.wait(30)
        deadline = time.monotonic() + 60
        while any(nginx_proc.is_alive(pid) for pid in [master, *workers]):
            assert time.monotonic() < deadline, "nginx outlived the platform"
            time.sleep(0.05)
    finally:
        platform.kill()
        platform.wait(30)


def test_a_pid_file_naming_another_process_harms_nobody(
    make_ingress: MakeIngress, tmp_path: Path
) -> None:
    bystander = os.getpid()
    (tmp_path / "data" / "ingress").mkdir(parents=True)
    (tmp_path / "data" / "ingress" / "nginx.pid").write_text(f"{bystander}\n")
    ingress = make_ingress(tmp_path / "data")
    ingress.start()
    assert ingress.pid not in (None, bystander)


def test_stop_ends_every_nginx_process(make_ingress: MakeIngress) -> None:
    ingress = make_ingress()
    ingress.start()
    master = ingress.pid
    assert master is not None
    workers = [w.pid for w in nginx_proc.workers(master)]
    assert workers
    ingress.stop()
    assert ingress.pid is None
    assert not any(nginx_proc.is_alive(pid) for pid in [master, *workers])
    assert ingress.wait_drained(0)  # nothing left to wait for


def test_a_renewed_server_certificate_is_served_after_apply(
    make_ingress: MakeIngress, make_server: MakeServer
) -> None:
    server = make_server()
    ca = TenantCa("alpha")
    ingress = make_ingress()
    ingress.start()
    ingress.apply([route(ca, server.port)])
    before = ingress.pki.cert_path.read_bytes()
    ingress.pki.renew_before = ingress.pki.renew_before * 1000  # "expires soon": reissue
    assert ingress.apply([route(ca, server.port)])
    after = ingress.pki.cert_path.read_bytes()
    assert after != before
    context = ssl.create_default_context(cafile=str(ingress.pki.ca_path))
    with (
        socket.create_connection(("127.0.0.1", ingress.listen[1]), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=host("demo", "alpha")) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    assert x509.load_der_x509_certificate(der) == x509.load_pem_x509_certificate(after)
