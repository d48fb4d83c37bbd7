"""Helpers for the ingress tests: tenant PKIs, model servers, gRPC calls through nginx.

Everything is real: certificates made with ``imm.certs``, ``python -m imm.serving``
processes serving a tiny ONNX model, Debian's nginx, TLS handshakes and the grpc client.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from grpc_health.v1 import health_pb2, health_pb2_grpc
from onnx import TensorProto, helper

from imm import certs
from imm.runtime.local.ingress import Ingress
from imm.runtime.local.pki import PlatformPki
from imm.serving.protos import predict_pb2
from imm.serving.protos.services import Stub
from imm.serving.tensors import make_tensor_proto, to_ndarray

READY_TIMEOUT = 180.0
CALL_TIMEOUT = 30.0
DOMAIN = "imm.localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host(endpoint: str, tenant: str) -> str:
    return f"{endpoint}-{tenant}.{DOMAIN}"


def new_ingress(data_dir: Path, port: int | None = None) -> Ingress:
    """An Ingress (not started) with its data in ``data_dir``, as the local runtime lays it out."""
    pki = PlatformPki(data_dir / "pki", DOMAIN)
    return Ingress(("127.0.0.1", port or free_port()), DOMAIN, data_dir / "ingress", pki)


# -- certificates --------------------------------------------------------------------------


@dataclass
class TenantCa:
    """A tenant's CA, and client certificates it issues as PEM bytes."""

    name: str
    key: object = field(default_factory=certs.new_key)
    cert: object = None

    def __post_init__(self) -> None:
        self.cert = certs.create_ca(f"{self.name} CA", self.key)  # type: ignore[arg-type]

    @property
    def pem(self) -> str:
        return certs.cert_pem(self.cert).decode()  # type: ignore[arg-type]

    def client(self, cn: str) -> tuple[bytes, bytes]:
        """(certificate, key) for a client whose subject CN is ``cn``."""
        key = certs.new_key()
        cert = certs.sign_csr(certs.create_csr(cn, key), self.cert, self.key)  # type: ignore[arg-type]
        return certs.cert_pem(cert), certs.key_pem(key)

    def client_named(self, *rdns: list[tuple[x509.ObjectIdentifier, str]]) -> tuple[bytes, bytes]:
        """A client whose subject has the given RDNs (a list per RDN: multi-valued ones)."""
        subject = x509.Name(
            [x509.RelativeDistinguishedName(x509.NameAttribute(o, v) for o, v in r) for r in rdns]
        )
        key = certs.new_key()
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, SHA256())
        cert = certs.sign_csr(csr, self.cert, self.key)  # type: ignore[arg-type]
        return certs.cert_pem(cert), certs.key_pem(key)


# -- model ---------------------------------------------------------------------------------


def add_model(path: Path, offset: float = 0.0) -> Path:
    """x float32 [-1, 3] -> y = x + x + offset: different offsets tell versions apart."""
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["x2"]), helper.make_node("Add", ["x2", "c"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", f, ["batch", 3])],
        [helper.make_tensor_value_info("y", f, ["batch", 3])],
        [helper.make_tensor("c", f, [1], [offset])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def model_base(folder: Path, offset: float = 0.0) -> Path:
    """A model base path with version 1 of the add model."""
    add_model(folder / "1" / "model.onnx", offset)
    return folder


class ModelServer:
    """A running ``python -m imm.serving`` on a loopback port."""

    def __init__(self, base: Path, log_dir: Path) -> None:
        self.port = free_port()
        self.log = log_dir / f"server-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "imm.serving",
                    "--model-name", "demo",
                    "--model-base-path", str(base),
                    "--port", str(self.port),
                    "--host", "127.0.0.1",
                    "--metrics-port", str(free_port()),
                    "--cache-dir", str(log_dir / f"cache-{self.port}"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self) -> ModelServer:
        deadline = time.monotonic() + READY_TIMEOUT
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"model server exited:\n{self.log.read_text()}")
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"model server not ready:\n{self.log.read_text()}")
                time.sleep(0.1)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


MakeIngress = Callable[..., Ingress]
MakeServer = Callable[..., ModelServer]


def start_server(base: Path, log_dir: Path, started: list[ModelServer]) -> ModelServer:
    """A ready server (appended to ``started`` for cleanup, even when it fails); another
    port is tried when the free one was taken before the server could bind it."""
    for attempt in range(3):
        server = ModelServer(base, log_dir)
        started.append(server)
        try:
            return server.wait_ready()
        except AssertionError:
            if attempt == 2 or "Address already in use" not in server.log.read_text():
                raise
    raise AssertionError("unreachable")


# -- calls ---------------------------------------------------------------------------------


def predict_request(x: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "demo"
    request.inputs["x"].CopyFrom(make_tensor_proto(x))
    return request


def channel(
    port: int,
    server_name: str,
    server_ca: bytes,
    client: tuple[bytes, bytes] | None,
    authority: str | None = None,
    options: tuple[tuple[str, object], ...] = (),
) -> grpc.Channel:
    """A channel through the ingress: TLS name ``server_name``, ``:authority`` likewise
    unless ``authority`` says otherwise."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=server_ca,
        private_key=client[1] if client else None,
        certificate_chain=client[0] if client else None,
    )
    return grpc.secure_channel(
        f"127.0.0.1:{port}",
        creds,
        options=[
            ("grpc.ssl_target_name_override", server_name),
            ("grpc.default_authority", authority or server_name),
            *options,
        ],
    )


# Predict is idempotent, so a client may retry UNAVAILABLE: nginx cannot retry a gRPC call
# whose request it already sent (grpc_pass never buffers the request body), so a replica
# SIGKILLed in the middle of a call costs that call unless the client retries it.
RETRY_UNAVAILABLE = (
    "grpc.service_config",
    json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{}],
                    "retryPolicy": {
                        "maxAttempts": 5,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    ),
)


def predict(chan: grpc.Channel, x: np.ndarray, timeout: float = CALL_TIMEOUT) -> np.ndarray:
    reply = Stub(chan).Predict(predict_request(x), timeout=timeout)
    return to_ndarray(reply.outputs["y"])


def error_of(chan: grpc.Channel) -> grpc.RpcError:
    """The error a Predict gets; fails the test if the call succeeds."""
    try:
        predict(chan, np.ones((1, 3), np.float32))
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


class CallLoop:
    """Calls Predict back to back in a thread, counting successes and keeping failures."""

    def __init__(self, chan: grpc.Channel, expect: float | None = None) -> None:
        self.chan = chan
        self.ok = 0
        self.failures: list[str] = []
        self.offsets: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        while not self._stop.is_set():
            try:
                y = predict(self.chan, x)
                self.offsets.append(float((y - 2 * x).flat[0]))
                self.ok += 1
            except grpc.RpcError as exc:
                self.failures.append(f"{exc.code().name}: {exc.details()}")

    def __enter__(self) -> CallLoop:
        self._thread.start()
        return self

    def wait_calls(self, count: int, timeout: float = 120.0) -> None:
        """Block until ``count`` more calls have finished (successful or not)."""
        target = self.ok + len(self.failures) + count
        deadline = time.monotonic() + timeout
        while self.ok + len(self.failures) < target:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError(f"only {self.ok} calls in {timeout}s: {self.failures[:5]}")
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def nginx_available() -> bool:
    return any(
        os.access(os.path.join(d, "nginx"), os.X_OK)
        for d in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/sbin"]
    )


needs_nginx = pytest.mark.skipif(not nginx_available(), reason="nginx is not installed")
