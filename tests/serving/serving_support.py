"""Helpers for the serving tests: tiny models built on the spot and real server processes.

Servers are started as ``python -m imm.serving`` on a free port and are ready when their
gRPC health check says SERVING; waits are generous because a 2-core CI machine may be busy
(TensorFlow alone takes several seconds to import).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import onnx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from onnx import TensorProto, helper

from imm.serving.protos import get_model_metadata_pb2, get_model_status_pb2, predict_pb2
from imm.serving.protos.services import Stub
from imm.serving.tensors import make_tensor_proto

READY_TIMEOUT = 180.0
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- models --------------------------------------------------------------------------------


def save_onnx(path: Path, nodes: list, inputs: list, outputs: list, inits: list = ()) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


WEIGHTS = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


def arith_model(path: Path) -> Path:
    """a, b float32 [-1, 3] -> sum = a + b, prod = (a * b) @ W  [-1, 4]."""
    f = TensorProto.FLOAT
    return save_onnx(
        path,
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Mul", ["a", "b"], ["ab"]),
            helper.make_node("MatMul", ["ab", "w"], ["prod"]),
        ],
        [helper.make_tensor_value_info(n, f, ["batch", 3]) for n in ("a", "b")],
        [
            helper.make_tensor_value_info("sum", f, ["batch", 3]),
            helper.make_tensor_value_info("prod", f, ["batch", 4]),
        ],
        [helper.make_tensor("w", f, WEIGHTS.shape, WEIGHTS.ravel().tolist())],
    )


DTYPES = {
    "f32": (TensorProto.FLOAT, np.float32),
    "f64": (TensorProto.DOUBLE, np.float64),
    "i32": (TensorProto.INT32, np.int32),
    "i64": (TensorProto.INT64, np.int64),
    "flag": (TensorProto.BOOL, np.bool_),
    "text": (TensorProto.STRING, object),
}


def dtypes_model(path: Path) -> Path:
    """One input per dtype; numbers are doubled, bools negated, strings passed through."""
    nodes, inputs, outputs = [], [], []
    for name, (onnx_type, _) in DTYPES.items():
        inputs.append(helper.make_tensor_value_info(name, onnx_type, [None, None]))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", onnx_type, [None, None]))
        if onnx_type == TensorProto.BOOL:
            nodes.append(helper.make_node("Not", [name], [f"{name}_out"]))
        elif onnx_type == TensorProto.STRING:
            nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
        else:
            nodes.append(helper.make_node("Add", [name, name], [f"{name}_out"]))
    return save_onnx(path, nodes, inputs, outputs)


def heavy_model(path: Path, rounds: int = 12) -> Path:
    """x [n, n] -> x @ x @ ... : slow enough on big inputs to be caught in flight."""
    f = TensorProto.FLOAT
    nodes, prev = [], "x"
    for i in range(rounds):
        nodes.append(helper.make_node("MatMul", [prev, "x"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]))
        prev = f"t{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    return save_onnx(
        path,
        nodes,
        [helper.make_tensor_value_info("x", f, ["n", "n"])],
        [helper.make_tensor_value_info("y", f, ["n", "n"])],
    )


# -- server processes ----------------------------------------------------------------------


class ServerProcess:
    """A running ``python -m imm.serving``; ``stub`` talks to it."""

    def __init__(self, proc: subprocess.Popen, port: int, metrics_port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.metrics_port = metrics_port
        self.log = log
        self.address = f"127.0.0.1:{port}"
        self.channel = grpc.insecure_channel(self.address)
        self.stub = Stub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.model: Path | None = None

    def health_status(self, service: str = "") -> int | None:
        try:
            reply = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        except grpc.RpcError:
            return None
        return reply.status

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.health_status() != health_pb2.HealthCheckResponse.SERVING:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {timeout}s:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def terminate(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.channel.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.channel.close()


def start_server(
    base: Path | str,
    tmp: Path,
    *extra: str,
    name: str = "demo",
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> ServerProcess:
    port, metrics_port = free_port(), free_port()
    log = tmp / f"server-{port}.log"
    cmd = [
        sys.executable, "-m", "imm.serving",
        "--model-name", name,
        "--model-base-path", str(base),
        "--port", str(port),
        "--host", "127.0.0.1",
        "--metrics-port", str(metrics_port),
        "--cache-dir", str(tmp / "cache"),
        *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    server = ServerProcess(proc, port, metrics_port, log)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.kill()
            raise
    return server


# -- request helpers -----------------------------------------------------------------------


def predict_request(
    inputs: dict[str, object],
    name: str = "demo",
    version: int | None = None,
    signature: str = "",
    output_filter: tuple[str, ...] = (),
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        if isinstance(value, np.ndarray) or not hasattr(value, "SerializeToString"):
            value = make_tensor_proto(value)
        request.inputs[key].CopyFrom(value)
    request.output_filter.extend(output_filter)
    return request


def metadata_request(name: str = "demo") -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = name
    request.metadata_field.append("signature_def")
    return request


def status_request(
    name: str = "demo", version: int | None = None
) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def saved_model(path: Path) -> Path:
    """A tf.Module with two signatures, saved as a SavedModel (TensorFlow is imported here)."""
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.float32, name="x"),
                tf.TensorSpec([None], tf.string, name="tag"),
            ]
        )
        def serve(self, x, tag):
            return {"y": tf.matmul(x, self.w) + 1.0, "n": tf.strings.length(tag), "echo": tag}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="k")])
        def double(self, k):
            return {"k2": k * 2}

    module = Scale()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve, "double": module.double}
    )
    return path


def write_pki(folder: Path, server_name: str = "model.test") -> dict[str, Path]:
    """A CA, a server certificate for ``server_name`` and a client certificate, as PEM files."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(cn, key, issuer_name, issuer_key, ca=False, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("Test CA", ca_key, name("Test CA"), ca_key, ca=True)
    files: dict[str, Path] = {}
    for label, cert, key in [("ca", ca, ca_key)] + [
        (label, issue(cn, k, ca.subject, ca_key, san=san), k)
        for label, cn, san, k in [
            ("server", server_name, server_name, ec.generate_private_key(ec.SECP256R1())),
            ("client", "client-1", None, ec.generate_private_key(ec.SECP256R1())),
        ]
    ]:
        files[label] = folder / f"{label}.pem"
        files[label].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{label}-key"] = folder / f"{label}.key"
        files[f"{label}-key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return files
