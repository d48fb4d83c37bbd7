"""An ONNX model behind the real server: outputs, metadata, status, health and every error."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2
from serving_support import (
    WEIGHTS,
    ServerProcess,
    metadata_request,
    predict_request,
    status_request,
)

from imm.serving.protos import get_model_metadata_pb2, get_model_status_pb2, tensor_pb2
from imm.serving.tensors import make_tensor_proto, to_ndarray

A = np.array([[1.0, 2.0, 3.0], [-1.5, 0.25, 8.0]], dtype=np.float32)
B = np.array([[0.5, -2.0, 1.0], [3.0, 4.0, -0.125]], dtype=np.float32)


def ok_call(server: ServerProcess) -> None:
    """After every error the same server must still answer correctly."""
    reply = server.stub.Predict(predict_request({"a": A, "b": B}), timeout=30)
    np.testing.assert_allclose(to_ndarray(reply.outputs["sum"]), A + B)


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value


def test_predict_matches_onnxruntime_called_directly(arith_server: ServerProcess):
    reply = arith_server.stub.Predict(predict_request({"a": A, "b": B}), timeout=30)
    session = ort.InferenceSession(str(arith_server.model))
    expected_sum, expected_prod = session.run(["sum", "prod"], {"a": A, "b": B})
    np.testing.assert_allclose(expected_prod, (A * B) @ WEIGHTS, rtol=1e-6)
    assert set(reply.outputs) == {"sum", "prod"}
    np.testing.assert_array_equal(to_ndarray(reply.outputs["sum"]), expected_sum)
    np.testing.assert_allclose(to_ndarray(reply.outputs["prod"]), expected_prod, rtol=1e-6)
    assert reply.model_spec.name == "demo"
    assert reply.model_spec.version.value == 2  # highest complete version; 3 has no model
    assert reply.model_spec.signature_name == "serving_default"
    # TF Serving answers in typed fields by default; clients read float_val directly.
    assert list(reply.outputs["sum"].float_val) == (A + B).ravel().tolist()
    assert [d.size for d in reply.outputs["prod"].tensor_shape.dim] == [2, 4]


def test_output_filter_and_explicit_version(arith_server: ServerProcess):
    request = predict_request({"a": A, "b": B}, version=2, output_filter=("prod",))
    reply = arith_server.stub.Predict(request, timeout=30)
    assert set(reply.outputs) == {"prod"}
    request = predict_request({"a": A, "b": B}, signature="serving_default")
    assert set(arith_server.stub.Predict(request, timeout=30).outputs) == {"sum", "prod"}


def test_scalar_typed_field_is_broadcast_like_tensorflow(arith_server: ServerProcess):
    one = tensor_pb2.TensorProto(dtype=1, float_val=[2.0])
    for size in (2, 3):
        one.tensor_shape.dim.add().size = size
    reply = arith_server.stub.Predict(predict_request({"a": A, "b": one}), timeout=30)
    np.testing.assert_array_equal(to_ndarray(reply.outputs["sum"]), A + 2.0)


def test_metadata_lists_signature(arith_server: ServerProcess):
    reply = arith_server.stub.GetModelMetadata(metadata_request(), timeout=30)
    assert reply.model_spec.name == "demo" and reply.model_spec.version.value == 2
    assert not reply.model_spec.signature_name
    any_msg = reply.metadata["signature_def"]
    assert any_msg.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    defs = get_model_metadata_pb2.SignatureDefMap()
    assert any_msg.Unpack(defs)
    sig = defs.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert set(sig.inputs) == {"a", "b"} and set(sig.outputs) == {"sum", "prod"}
    assert sig.inputs["a"].dtype == 1  # DT_FLOAT
    assert [d.size for d in sig.inputs["a"].tensor_shape.dim] == [-1, 3]
    assert [d.size for d in sig.outputs["prod"].tensor_shape.dim] == [-1, 4]


def test_status_and_health(arith_server: ServerProcess):
    State = get_model_status_pb2.ModelVersionStatus.State
    for version in (None, 2):
        reply = arith_server.stub.GetModelStatus(status_request(version=version), timeout=30)
        (entry,) = reply.model_version_status
        assert entry.version == 2 and entry.state == State.AVAILABLE
        assert entry.HasField("status") and entry.status.error_code == 0
    serving = health_pb2.HealthCheckResponse.SERVING
    assert arith_server.health_status() == serving
    assert arith_server.health_status("tensorflow.serving.PredictionService") == serving


def test_metrics_endpoint_counts_calls_and_errors(arith_server: ServerProcess):
    ok_call(arith_server)
    rpc_error(arith_server.stub.Predict, predict_request({"a": A, "b": B}, name="nope"))
    url = f"http://127.0.0.1:{arith_server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    assert 'imm_serving_requests_total{method="Predict",model="demo",version="2"}' in text
    assert 'code="NOT_FOUND"' in text
    assert "imm_serving_request_duration_seconds_bucket" in text
    assert 'imm_serving_model_ready{model="demo",version="2"} 1.0' in text


def _tensor(dtype: int, shape: list[int], **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    return proto


CASES = [
    # (request, code, message fragments)
    pytest.param(
        predict_request({"a": A, "b": B}, name="other"),
        grpc.StatusCode.NOT_FOUND,
        ["Servable not found for request: Latest(other)"],
        id="unknown-model",
    ),
    pytest.param(
        predict_request({"a": A, "b": B}, version=7),
        grpc.StatusCode.NOT_FOUND,
        ["Servable not found for request: Specific(demo, 7)"],
        id="unknown-version",
    ),
    pytest.param(
        predict_request({"a": A}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["input size does not match signature", "Missing but required: {b}"],
        id="missing-input",
    ),
    pytest.param(
        predict_request({"a": A, "c": B}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["Inputs contains invalid name", "c"],
        id="unknown-input",
    ),
    pytest.param(
        predict_request({"a": A, "b": B, "c": B}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["Sent extra: {c}"],
        id="extra-input",
    ),
    pytest.param(
        predict_request({"a": A, "b": B.astype(np.float64)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["input b", "expected dtype DT_FLOAT", "got DT_DOUBLE"],
        id="wrong-dtype",
    ),
    pytest.param(
        predict_request({"a": A, "b": np.ones((2, 4), np.float32)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["input b", "expected shape [-1,3]", "got [2,4]"],
        id="incompatible-shape",
    ),
    pytest.param(
        predict_request({"a": A, "b": np.ones(3, np.float32)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["input b", "expected shape [-1,3]", "got [3]"],
        id="wrong-rank",
    ),
    pytest.param(
        predict_request({"a": A, "b": _tensor(1, [2, 3], tensor_content=b"\0" * 5)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["tensor parsing error: b"],
        id="bad-tensor-content",
    ),
    pytest.param(
        predict_request({"a": A, "b": B}, output_filter=("nope",)),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["output tensor alias not found in signature: nope", "{prod,sum}"],
        id="unknown-output-filter",
    ),
    pytest.param(
        predict_request({"a": A, "b": B}, output_filter=("sum", "sum")),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["duplicate output tensor alias: sum"],
        id="duplicate-output-filter",
    ),
    pytest.param(
        predict_request({"a": A, "b": B}, signature="classify"),
        grpc.StatusCode.FAILED_PRECONDITION,
        ['Serving signature key "classify" not found.'],
        id="unknown-signature",
    ),
    pytest.param(
        predict_request({"a": A, "b": B}, name=""),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["ModelSpec has no name specified."],
        id="no-name",
    ),
]


@pytest.mark.parametrize(("request_", "code", "fragments"), CASES)
def test_bad_predict_is_refused_and_server_keeps_serving(
    arith_server: ServerProcess, request_, code, fragments
):
    error = rpc_error(arith_server.stub.Predict, request_)
    assert error.code() == code, error.details()
    for fragment in fragments:
        assert fragment in error.details()
    ok_call(arith_server)


def test_missing_model_spec_and_version_label(arith_server: ServerProcess):
    request = predict_request({"a": A, "b": B})
    request.ClearField("model_spec")
    assert rpc_error(arith_server.stub.Predict, request).details() == "Missing ModelSpec"
    request = predict_request({"a": A, "b": B})
    request.model_spec.version_label = "stable"
    error = rpc_error(arith_server.stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "version_label" in error.details()
    ok_call(arith_server)


def test_metadata_and_status_errors(arith_server: ServerProcess):
    stub = arith_server.stub
    empty = metadata_request()
    del empty.metadata_field[:]
    error = rpc_error(stub.GetModelMetadata, empty)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at least one metadata_field" in error.details()
    bad = metadata_request()
    bad.metadata_field[0] = "graph"
    assert (
        rpc_error(stub.GetModelMetadata, bad).details() == "Metadata field graph is not supported"
    )
    error = rpc_error(stub.GetModelMetadata, metadata_request(name="other"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(stub.GetModelStatus, status_request(version=9))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Could not find version 9 of model demo"
    error = rpc_error(stub.GetModelStatus, status_request(name="other"))
    assert error.details() == "Could not find any versions of model other"
    ok_call(arith_server)


def test_unsupported_methods_answer_unimplemented(arith_server: ServerProcess):
    from imm.serving.protos import classification_pb2

    error = rpc_error(arith_server.stub.Classify, classification_pb2.ClassificationRequest())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    ok_call(arith_server)


def test_request_over_size_limit_is_resource_exhausted(serve, tmp_path):
    from serving_support import arith_model

    arith_model(tmp_path / "models" / "1" / "model.onnx")
    server = serve(tmp_path / "models", "--max-request-bytes", "4096")
    big = np.ones((1000, 3), np.float32)
    error = rpc_error(server.stub.Predict, predict_request({"a": big, "b": big}))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ok_call(server)


def test_tensor_content_responses_on_request(serve, tmp_path):
    from serving_support import arith_model

    arith_model(tmp_path / "models" / "5" / "model.onnx")
    server = serve(tmp_path / "models", "--enable-serialization-as-tensor-content")
    reply = server.stub.Predict(predict_request({"a": A, "b": make_tensor_proto(B)}), timeout=30)
    assert reply.outputs["sum"].tensor_content and not reply.outputs["sum"].float_val
    np.testing.assert_array_equal(to_ndarray(reply.outputs["sum"]), A + B)
    assert reply.model_spec.version.value == 5
