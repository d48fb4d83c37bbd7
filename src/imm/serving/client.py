"""A small TF Serving gRPC client: status, metadata, predict, and a latency benchmark.

It backs ``imm predict`` and works against any TF-Serving-compatible server, directly or
through the mTLS ingress (``server_name`` sets both the TLS name and the HTTP/2 authority,
which is how the ingress routes to an endpoint).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from imm.serving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)
from imm.serving.protos.services import METHODS, MODEL_SERVICE, PREDICTION_SERVICE, Stub
from imm.serving.tensors import DT, dtype_name, fill_value, numpy_dtype, to_ndarray

MAX_MESSAGE = 256 * 1024 * 1024


@dataclass(frozen=True)
class Tls:
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None


# gRPC's standard retry policy for UNAVAILABLE on the read-only Predict/metadata calls. A
# proxy such as nginx streams a gRPC request to the replica unbuffered and cannot replay it,
# so a call in flight on a replica that dies comes back UNAVAILABLE: retrying it is safe.
RETRY_UNAVAILABLE = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": PREDICTION_SERVICE}, {"service": MODEL_SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def open_channel(address: str, tls: Tls | None = None) -> grpc.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", RETRY_UNAVAILABLE),
    ]
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    if tls.server_name:
        options += [
            ("grpc.ssl_target_name_override", tls.server_name),
            ("grpc.default_authority", tls.server_name),
        ]
    if (tls.client_cert is None) != (tls.client_key is None):
        raise ValueError("--client-cert and --client-key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_cert.read_bytes() if tls.ca_cert else None,
        private_key=tls.client_key.read_bytes() if tls.client_key else None,
        certificate_chain=tls.client_cert.read_bytes() if tls.client_cert else None,
    )
    return grpc.secure_channel(address, credentials, options=options)


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # e.g. DT_FLOAT
    shape: list[int] | None  # None: unknown rank


@dataclass(frozen=True)
class SignatureInfo:
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str


def _info(proto: Any) -> TensorInfo:
    shape = None if proto.tensor_shape.unknown_rank else [d.size for d in proto.tensor_shape.dim]
    return TensorInfo(dtype_name(proto.dtype), shape)


class ServingClient:
    def __init__(self, address: str, tls: Tls | None = None, timeout: float = 30.0) -> None:
        self.channel = open_channel(address, tls)
        self.stub = Stub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _spec(target: Any, name: str, version: int | None, signature: str = "") -> None:
        target.name = name
        if version is not None:
            target.version.value = version
        if signature:
            target.signature_name = signature

    def status(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, name, version)
        reply = self.stub.GetModelStatus(request, timeout=self.timeout)
        state = get_model_status_pb2.ModelVersionStatus.State
        return [
            {
                "version": s.version,
                "state": state.Name(s.state),
                "error_code": s.status.error_code,
                "error_message": s.status.error_message,
            }
            for s in reply.model_version_status
        ]

    def metadata(self, name: str, version: int | None = None) -> dict[str, SignatureInfo]:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec, name, version)
        request.metadata_field.append("signature_def")
        reply = self.stub.GetModelMetadata(request, timeout=self.timeout)
        defs = get_model_metadata_pb2.SignatureDefMap()
        reply.metadata["signature_def"].Unpack(defs)
        return {
            key: SignatureInfo(
                {a: _info(t) for a, t in sig.inputs.items()},
                {a: _info(t) for a, t in sig.outputs.items()},
                sig.method_name,
            )
            for key, sig in defs.signature_def.items()
        }

    def predict_request(
        self,
        name: str,
        inputs: Mapping[str, np.ndarray],
        version: int | None = None,
        signature: str = "",
        output_filter: Sequence[str] = (),
    ) -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, name, version, signature)
        for alias, value in inputs.items():
            fill_value(request.inputs[alias], value)
        request.output_filter.extend(output_filter)
        return request

    def predict(self, request: predict_pb2.PredictRequest) -> tuple[dict[str, np.ndarray], int]:
        """Outputs by alias, and the version that answered."""
        reply = self.stub.Predict(request, timeout=self.timeout)
        outputs = {alias: to_ndarray(t) for alias, t in reply.outputs.items()}
        return outputs, reply.model_spec.version.value


def random_inputs(
    signature: SignatureInfo, batch: int = 1, seed: int | None = None
) -> dict[str, np.ndarray]:
    """Data of each input's dtype and shape; unknown sizes become ``batch``."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for alias, info in signature.inputs.items():
        shape = tuple(batch if d < 0 else d for d in info.shape or [batch])
        kind = _numpy_dtype(info.dtype)
        if kind.kind == "f":
            out[alias] = rng.standard_normal(shape).astype(kind)
        elif kind.kind in "iu":
            out[alias] = rng.integers(0, 10, shape).astype(kind)
        elif kind.kind == "b":
            out[alias] = rng.integers(0, 2, shape).astype(bool)
        else:
            flat = [f"s{i}".encode() for i in range(int(np.prod(shape)))]
            out[alias] = np.array(flat, dtype=object).reshape(shape)
    return out


def _numpy_dtype(name: str) -> np.dtype:
    return numpy_dtype(DT.Value(name))


def load_inputs(path: Path, signature: SignatureInfo) -> dict[str, np.ndarray]:
    """``.npy`` feeds a model's single input; ``.npz`` and ``.json`` map input names to data."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if len(signature.inputs) != 1:
            raise ValueError(
                f"{path.name} holds one array but the model has inputs "
                f"{sorted(signature.inputs)}; use .npz or .json with one entry per input"
            )
        return {next(iter(signature.inputs)): np.load(path, allow_pickle=False)}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path.name} must hold an object mapping input names to arrays")
        out = {}
        for alias, value in data.items():
            info = signature.inputs.get(alias)
            dtype = _numpy_dtype(info.dtype) if info else None
            # Strings stay as JSON gives them: the request encodes each one as UTF-8.
            out[alias] = np.array(value, dtype=dtype)
        return out
    raise ValueError(f"{path.name}: expected a .npy, .npz or .json file")


@dataclass(frozen=True)
class Stats:
    calls: int
    errors: int
    seconds: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "throughput_per_s": round(self.throughput, 1),
            "mean_ms": round(self.mean_ms, 3),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }


def summarize(latencies: Sequence[float], seconds: float, errors: int = 0) -> Stats:
    """Latencies in seconds -> milliseconds statistics."""
    ms = np.asarray(latencies, dtype=np.float64) * 1000
    if not ms.size:
        return Stats(0, errors, seconds, 0, 0, 0, 0, 0)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Stats(
        int(ms.size), errors, seconds, float(ms.mean()), float(p50), float(p90), float(p99),
        float(ms.max()),
    )  # fmt: skip


def benchmark(
    client: ServingClient,
    request: predict_pb2.PredictRequest,
    calls: int,
    concurrency: int = 1,
) -> Stats:
    """``calls`` Predicts from ``concurrency`` threads; the request is serialized once."""
    payload = request.SerializeToString()
    method = client.channel.unary_unary(
        METHODS["Predict"].path,
        request_serializer=None,
        response_deserializer=None,
    )
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    remaining = [calls]

    def worker() -> None:
        mine: list[float] = []
        failed = 0
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            start = time.perf_counter()
            try:
                method(payload, timeout=client.timeout)
                mine.append(time.perf_counter() - start)
            except grpc.RpcError:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    method(payload, timeout=client.timeout)  # connect and warm up outside the timing
    threads = [threading.Thread(target=worker) for _ in range(max(1, concurrency))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarize(latencies, time.perf_counter() - start, errors[0])
