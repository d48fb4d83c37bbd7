"""A TensorFlow SavedModel behind the real server, checked against TensorFlow called directly."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from serving_support import (
    ServerProcess,
    metadata_request,
    predict_request,
    saved_model,
    start_server,
    status_request,
)

from imm.serving.protos import get_model_metadata_pb2, get_model_status_pb2
from imm.serving.tensors import to_ndarray

tf = pytest.importorskip("tensorflow")

X = np.array([[1.0, 0.5, -2.0], [0.0, 3.0, 1.25]], np.float32)
TAGS = np.array([b"abc", "é".encode()], dtype=object)


@pytest.fixture(scope="module")
def tf_server(tmp_path_factory) -> ServerProcess:
    tmp = tmp_path_factory.mktemp("savedmodel")
    path = saved_model(tmp / "models" / "4")
    server = start_server(tmp / "models", tmp, name="scale")
    server.model = path
    yield server
    server.kill()


def test_predict_matches_tensorflow(tf_server: ServerProcess):
    reply = tf_server.stub.Predict(predict_request({"x": X, "tag": TAGS}, name="scale"), timeout=60)
    direct = tf.saved_model.load(str(tf_server.model)).signatures["serving_default"]
    expected = direct(x=tf.constant(X), tag=tf.constant(TAGS))
    assert set(reply.outputs) == {"y", "n", "echo"}
    np.testing.assert_allclose(to_ndarray(reply.outputs["y"]), expected["y"].numpy(), rtol=1e-6)
    assert to_ndarray(reply.outputs["n"]).tolist() == expected["n"].numpy().tolist() == [3, 2]
    assert to_ndarray(reply.outputs["echo"]).tolist() == TAGS.tolist()
    assert reply.model_spec.version.value == 4


def test_second_signature_and_filter(tf_server: ServerProcess):
    request = predict_request({"k": np.array([1, -5], np.int64)}, name="scale", signature="double")
    reply = tf_server.stub.Predict(request, timeout=60)
    assert to_ndarray(reply.outputs["k2"]).tolist() == [2, -10]
    assert reply.model_spec.signature_name == "double"
    request = predict_request({"x": X, "tag": TAGS}, name="scale", output_filter=("n",))
    assert set(tf_server.stub.Predict(request, timeout=60).outputs) == {"n"}


def test_metadata_copies_every_signature_def(tf_server: ServerProcess):
    reply = tf_server.stub.GetModelMetadata(metadata_request("scale"), timeout=60)
    defs = get_model_metadata_pb2.SignatureDefMap()
    assert reply.metadata["signature_def"].Unpack(defs)
    assert set(defs.signature_def) == {"serving_default", "double", "__saved_model_init_op"}
    sig = defs.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert set(sig.inputs) == {"x", "tag"} and set(sig.outputs) == {"y", "n", "echo"}
    assert sig.inputs["x"].name.startswith("serving_default_x")
    assert [d.size for d in sig.inputs["x"].tensor_shape.dim] == [-1, 3]
    assert sig.inputs["tag"].dtype == 7  # DT_STRING


def test_status_and_errors(tf_server: ServerProcess):
    reply = tf_server.stub.GetModelStatus(status_request("scale"), timeout=60)
    (entry,) = reply.model_version_status
    assert entry.version == 4
    assert entry.state == get_model_status_pb2.ModelVersionStatus.State.AVAILABLE
    for request, code in [
        (predict_request({"x": X}, name="scale"), grpc.StatusCode.INVALID_ARGUMENT),
        (predict_request({"x": X.astype(np.float64), "tag": TAGS}, name="scale"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (predict_request({"x": X, "tag": TAGS}, name="scale", version=1),
         grpc.StatusCode.NOT_FOUND),
    ]:  # fmt: skip
        with pytest.raises(grpc.RpcError) as info:
            tf_server.stub.Predict(request, timeout=60)
        assert info.value.code() == code
        reply = tf_server.stub.Predict(
            predict_request({"x": X, "tag": TAGS}, name="scale"), timeout=60
        )
        assert to_ndarray(reply.outputs["n"]).tolist() == [3, 2]
