"""Start-up, readiness, bad versions and graceful shutdown of the real server process."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.request

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2
from serving_support import (
    arith_model,
    heavy_model,
    predict_request,
    save_onnx,
    status_request,
)

from imm.serving.protos import get_model_status_pb2
from imm.serving.tensors import to_ndarray

NOT_RUN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
SERVING = health_pb2.HealthCheckResponse.SERVING
State = get_model_status_pb2.ModelVersionStatus.State
A = np.ones((1, 3), np.float32)


def _inflight(server) -> float:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    return float(re.search(r"^imm_serving_inflight_requests (\S+)$", text, re.M)[1])


def test_sigterm_finishes_accepted_calls_and_exits_zero(serve, tmp_path):
    model = heavy_model(tmp_path / "models" / "1" / "m.onnx")
    server = serve(tmp_path / "models", "--grpc-max-threads", "8", "--intra-op-threads", "1")
    rng = np.random.default_rng(0)
    big = (rng.standard_normal((600, 600)) / 30).astype(np.float32)
    expected = ort.InferenceSession(str(model)).run(["y"], {"x": big})[0]

    heavy_results: list[object] = []
    stream_results: list[object] = []
    done = threading.Event()

    def heavy_call() -> None:
        try:
            reply = server.stub.Predict(predict_request({"x": big}), timeout=300)
            heavy_results.append(to_ndarray(reply.outputs["y"]))
        except grpc.RpcError as exc:
            heavy_results.append(exc)

    def stream() -> None:
        small = np.eye(2, dtype=np.float32)
        while not done.is_set():
            try:
                reply = server.stub.Predict(predict_request({"x": small}), timeout=300)
                stream_results.append(to_ndarray(reply.outputs["y"]).shape)
            except grpc.RpcError as exc:
                stream_results.append(exc.code())
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    return

    heavy = [threading.Thread(target=heavy_call) for _ in range(4)]
    streamer = threading.Thread(target=stream)
    for t in heavy:
        t.start()
    deadline = time.monotonic() + 120
    while _inflight(server) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _inflight(server) >= 4, "the heavy calls never were in flight together"
    streamer.start()
    while not stream_results and time.monotonic() < deadline:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGTERM)
    while server.health_status() == SERVING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.health_status() != SERVING
    assert server.proc.wait(timeout=300) == 0
    done.set()
    for t in [*heavy, streamer]:
        t.join(timeout=300)

    assert len(heavy_results) == 4
    for result in heavy_results:
        assert isinstance(result, np.ndarray), result
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)
    # Every call the server started was answered: its own count equals our OK replies.
    # The rest were refused without being run: UNAVAILABLE once the port closed, or
    # CANCELLED for a call still queued inside gRPC when the server shut down.
    ok = sum(1 for r in stream_results if r == (2, 2))
    assert ok and all(r == (2, 2) or r in NOT_RUN for r in stream_results), stream_results
    stopped = [json.loads(line) for line in server.output().splitlines() if '"stopped"' in line]
    assert stopped and stopped[0]["started_calls"]["Predict"] == len(heavy_results) + ok


def test_health_serving_only_when_ready(serve, tmp_path):
    pytest.importorskip("tensorflow")
    from serving_support import saved_model

    saved_model(tmp_path / "models" / "1")  # TensorFlow's import makes loading take a while
    server = serve(tmp_path / "models", wait=False)
    seen: list[int | None] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = server.health_status()
        if status is not None:
            seen.append(status)
        if status == SERVING:
            break
        if status is not None:
            try:  # refused while loading; may succeed only if loading just finished
                server.stub.Predict(
                    predict_request({"k": np.array([1])}, signature="double"), timeout=30
                )
                assert server.health_status() == SERVING
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc.details()
            try:  # before the version is resolved, nothing is tracked yet (as in TF Serving)
                reply = server.stub.GetModelStatus(status_request(), timeout=30)
                (entry,) = reply.model_version_status
                assert entry.state in (State.LOADING, State.AVAILABLE)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc.details()
        time.sleep(0.05)
    assert seen and seen[-1] == SERVING, server.output()
    assert seen[0] != SERVING, "health said SERVING before the model was loaded"
    request = predict_request({"k": np.array([1, 2])}, signature="double")
    assert to_ndarray(server.stub.Predict(request, timeout=60).outputs["k2"]).tolist() == [2, 4]


def _fails(server, fragment: str) -> None:
    assert server.proc.wait(timeout=180) != 0
    assert fragment in server.output(), server.output()


def test_version_without_model_exits_non_zero(serve, tmp_path):
    (tmp_path / "models" / "1").mkdir(parents=True)
    (tmp_path / "models" / "1" / "notes.txt").write_text("no model here")
    _fails(serve(tmp_path / "models", wait=False), "holds neither an ONNX model")
    _fails(
        serve(tmp_path / "models", "--model-version", "1", wait=False),
        "holds neither an ONNX model",
    )


def test_unknown_version_and_broken_models_exit_non_zero(serve, tmp_path):
    arith_model(tmp_path / "models" / "1" / "m.onnx")
    _fails(serve(tmp_path / "models", "--model-version", "9", wait=False), "version 9 not found")
    (tmp_path / "models" / "2").mkdir()
    (tmp_path / "models" / "2" / "m.onnx").write_bytes(b"not a model")
    _fails(serve(tmp_path / "models", wait=False), "onnxruntime cannot load")
    (tmp_path / "models" / "3").mkdir()
    (tmp_path / "models" / "3" / "saved_model.pb").write_bytes(b"")
    _fails(serve(tmp_path / "models", wait=False), "no variables/ folder")
    _fails(serve(tmp_path / "nowhere", wait=False), "is not a folder")


def test_explicit_older_version_is_served(serve, tmp_path):
    arith_model(tmp_path / "models" / "1" / "m.onnx")
    save_onnx(tmp_path / "models" / "2" / "sub" / "m.onnx", *_identity())
    server = serve(tmp_path / "models", "--model-version", "1")
    reply = server.stub.Predict(predict_request({"a": A, "b": A}), timeout=30)
    assert reply.model_spec.version.value == 1
    reply = server.stub.GetModelStatus(status_request(), timeout=30)
    assert [e.version for e in reply.model_version_status] == [1]
    latest = serve(tmp_path / "models")  # version 2 keeps its model in a sub-folder
    reply = latest.stub.Predict(predict_request({"v": A}), timeout=30)
    assert reply.model_spec.version.value == 2
    np.testing.assert_array_equal(to_ndarray(reply.outputs["w"]), A)


def _identity():
    from onnx import TensorProto, helper

    return (
        [helper.make_node("Identity", ["v"], ["w"])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [None, 3])],
    )


def test_several_processes_share_the_port(serve, tmp_path):
    arith_model(tmp_path / "models" / "1" / "m.onnx")
    server = serve(tmp_path / "models", "--processes", "2")
    channels = [grpc.insecure_channel(server.address) for _ in range(6)]
    try:
        from imm.serving.protos.services import Stub

        for channel in channels:  # separate connections, spread over the workers
            reply = Stub(channel).Predict(predict_request({"a": A, "b": A}), timeout=30)
            np.testing.assert_array_equal(to_ndarray(reply.outputs["sum"]), A * 2)
    finally:
        for channel in channels:
            channel.close()
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    assert 'imm_serving_requests_total{method="Predict",model="demo",version="1"} 6.0' in text
    assert server.terminate() == 0
    log = server.output()
    assert log.count('"model ready"') == 2 and '"worker_codes": [0, 0]' in log
