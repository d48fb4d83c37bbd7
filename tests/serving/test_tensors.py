"""TensorProto decoding follows TensorFlow's rules (protocols.md 5.1), without a server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imm.serving.protos import tensor_pb2, types_pb2
from imm.serving.tensors import TensorError, fill, make_tensor_proto, to_ndarray

DT = types_pb2.DataType


def _proto(dtype: int, shape: list[int], **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    return proto


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1e300, -1.0]),
        np.array([[-1, 2**31 - 1]], np.int32),
        np.array([-(2**63), 2**63 - 1]),
        np.array([True, False, True]),
        np.array([b"a", b"\xff", b""], dtype=object),
        np.array([1.5, -2.0], np.float16),
        np.array([1 + 2j, -3j], np.complex64),
        np.array([7, 8], np.uint8),
        np.zeros((0, 3), np.float32),
        np.float32(4.5),
    ],
    ids=lambda a: f"{a.dtype}{list(np.shape(a))}",
)
@pytest.mark.parametrize("as_content", [False, True])
def test_round_trip(array, as_content):
    array = np.asarray(array)
    decoded = to_ndarray(make_tensor_proto(array, as_content=as_content))
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_short_typed_field_repeats_last_value():
    proto = _proto(DT.DT_INT64, [2, 3], int64_val=[4, 5])
    assert to_ndarray(proto).tolist() == [[4, 5, 5], [5, 5, 5]]


def test_empty_typed_field_is_zeros_and_long_one_is_cut():
    assert to_ndarray(_proto(DT.DT_FLOAT, [3])).tolist() == [0.0, 0.0, 0.0]
    assert to_ndarray(_proto(DT.DT_INT32, [2], int_val=[1, 2, 3])).tolist() == [1, 2]
    assert to_ndarray(_proto(DT.DT_STRING, [2])).tolist() == [b"", b""]


def test_no_shape_is_a_scalar_and_content_wins_over_typed_fields():
    assert to_ndarray(tensor_pb2.TensorProto(dtype=DT.DT_DOUBLE, double_val=[2.5])) == 2.5
    content = np.array([1.0, 2.0], np.float32).tobytes()
    proto = _proto(DT.DT_FLOAT, [2], tensor_content=content, float_val=[9.0])
    assert to_ndarray(proto).tolist() == [1.0, 2.0]


def test_string_tensor_content_form():
    # TF's content form for strings: varint lengths first, then the bytes.
    proto = _proto(DT.DT_STRING, [2], tensor_content=b"\x02\x01abc")
    assert to_ndarray(proto).tolist() == [b"ab", b"c"]


@pytest.mark.parametrize(
    "proto",
    [
        _proto(DT.DT_FLOAT, [2, 2], tensor_content=b"\0" * 12),
        _proto(DT.DT_FLOAT, [-1, 2], float_val=[1.0]),
        _proto(DT.DT_INVALID, [1]),
        _proto(DT.DT_RESOURCE, [1]),
        _proto(DT.DT_STRING, [2], tensor_content=b"\x05ab"),
    ],
    ids=["content-length", "negative-dim", "invalid-dtype", "resource", "string-content"],
)
def test_bad_tensors_raise(proto):
    with pytest.raises(TensorError):
        to_ndarray(proto)


def test_fast_typed_fill_equals_plain_extend():
    array = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(10, 100)
    fast = fill(tensor_pb2.TensorProto(), array)
    plain = _proto(DT.DT_FLOAT, [10, 100])
    plain.float_val.extend(array.ravel().tolist())
    assert fast == plain


def test_client_strings_go_in_as_utf8_whatever_their_python_type(tmp_path):
    from imm.serving.client import ServingClient, SignatureInfo, TensorInfo, load_inputs

    sig = SignatureInfo({"s": TensorInfo("DT_STRING", [-1])}, {}, "tensorflow/serving/predict")
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"s": ["é", 1, 2.5, True, None]}))
    client = ServingClient.__new__(ServingClient)  # no channel: only builds the request
    request = client.predict_request("m", load_inputs(path, sig))
    assert list(request.inputs["s"].string_val) == [b"\xc3\xa9", b"1", b"2.5", b"True", b"None"]
    for value in (np.array(["é", "x"]), np.array([b"a", b"b"]), "é"):
        proto = make_tensor_proto(value)
        assert not proto.tensor_content and to_ndarray(proto).ravel()[0] in (b"\xc3\xa9", b"a")
