"""Every dtype of the issue, sent as typed fields and as tensor_content, answered both ways."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from serving_support import DTYPES, ServerProcess, dtypes_model, predict_request, start_server

from imm.serving.tensors import make_tensor_proto, to_ndarray

VALUES = {
    "f32": np.array([[1.5, -2.25, 3.0e7], [0.0, -0.0, 1e-7]], np.float32),
    "f64": np.array([[1.0 / 3, -2.5e300, 7.0]], np.float64),
    "i32": np.array([[-(2**31), 2**31 - 1], [0, -7]], np.int32) // 2,
    "i64": np.array([[-(2**62), 2**62, 5]], np.int64),
    "flag": np.array([[True, False, True]], np.bool_),
    "text": np.array([["héllo".encode(), b""], [b"x" * 300, b"\x00\x01"]], dtype=object),
}


@pytest.fixture(scope="module", params=[False, True], ids=["typed-replies", "content-replies"])
def dtype_server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dtypes")
    model = dtypes_model(tmp / "models" / "1" / "m.onnx")
    extra = ["--enable-serialization-as-tensor-content"] if request.param else []
    server = start_server(tmp / "models", tmp, *extra)
    server.model = model
    yield server
    server.kill()


def _expected(model) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model))
    feeds = dict(VALUES)
    feeds["text"] = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(
        VALUES["text"]
    )
    names = [f"{n}_out" for n in DTYPES]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("as_content", [False, True], ids=["typed-fields", "tensor-content"])
def test_all_dtypes_round_trip(dtype_server: ServerProcess, as_content: bool):
    inputs = {k: make_tensor_proto(v, as_content=as_content) for k, v in VALUES.items()}
    if as_content:
        assert all(inputs[k].tensor_content for k in VALUES if k != "text")
    else:
        assert not any(p.tensor_content for p in inputs.values())
    reply = dtype_server.stub.Predict(predict_request(inputs), timeout=30)
    expected = _expected(dtype_server.model)
    for name in DTYPES:
        got = to_ndarray(reply.outputs[f"{name}_out"])
        want = expected[f"{name}_out"]
        if name == "text":
            want = VALUES["text"]  # bytes come back as sent
        assert got.dtype == VALUES[name].dtype, name
        assert got.shape == VALUES[name].shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_string_with_invalid_utf8_is_refused_for_onnx(dtype_server: ServerProcess):
    import grpc

    inputs = dict(VALUES)
    inputs["text"] = np.array([[b"\xff\xfe"]], dtype=object)
    with pytest.raises(grpc.RpcError) as info:
        dtype_server.stub.Predict(predict_request(inputs), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text" in info.value.details()
    reply = dtype_server.stub.Predict(predict_request(VALUES), timeout=30)
    assert to_ndarray(reply.outputs["flag_out"]).tolist() == [[False, True, False]]
