"""TensorProto <-> numpy, following TensorFlow's own decoding rules (protocols.md 5.1).

This is the hot path of Predict, so raw buffers are viewed, not copied (``np.frombuffer``),
and typed float/double/bool outputs are written by parsing their packed wire bytes instead
of appending Python numbers one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from imm.serving.protos import tensor_pb2, types_pb2

DT = types_pb2.DataType
# Plain ints: attribute lookups on the enum wrapper cost microseconds on the hot path.
DT_STRING = DT.Value("DT_STRING")
DT_HALF = DT.Value("DT_HALF")
DT_COMPLEX64 = DT.Value("DT_COMPLEX64")
DT_COMPLEX128 = DT.Value("DT_COMPLEX128")

#: dtype enum -> numpy dtype, for every dtype this server can carry.
NUMPY: dict[int, np.dtype] = {
    DT.DT_FLOAT: np.dtype(np.float32),
    DT.DT_DOUBLE: np.dtype(np.float64),
    DT.DT_INT32: np.dtype(np.int32),
    DT.DT_UINT8: np.dtype(np.uint8),
    DT.DT_INT16: np.dtype(np.int16),
    DT.DT_INT8: np.dtype(np.int8),
    DT_STRING: np.dtype(object),
    DT_COMPLEX64: np.dtype(np.complex64),
    DT.DT_INT64: np.dtype(np.int64),
    DT.DT_BOOL: np.dtype(np.bool_),
    DT.DT_UINT16: np.dtype(np.uint16),
    DT_COMPLEX128: np.dtype(np.complex128),
    DT_HALF: np.dtype(np.float16),
    DT.DT_UINT32: np.dtype(np.uint32),
    DT.DT_UINT64: np.dtype(np.uint64),
}
_FROM_NUMPY: dict[np.dtype, int] = {v: k for k, v in NUMPY.items()}

#: dtype enum -> the typed repeated field that holds its values.
_FIELD: dict[int, str] = {
    DT.DT_FLOAT: "float_val",
    DT.DT_DOUBLE: "double_val",
    DT.DT_INT32: "int_val",
    DT.DT_UINT8: "int_val",
    DT.DT_INT16: "int_val",
    DT.DT_INT8: "int_val",
    DT.DT_UINT16: "int_val",
    DT_STRING: "string_val",
    DT_COMPLEX64: "scomplex_val",
    DT.DT_INT64: "int64_val",
    DT.DT_BOOL: "bool_val",
    DT_COMPLEX128: "dcomplex_val",
    DT_HALF: "half_val",
    DT.DT_UINT32: "uint32_val",
    DT.DT_UINT64: "uint64_val",
}

# Packed repeated fields whose wire payload is exactly the little-endian array bytes:
# dtype -> the field's tag byte (field number << 3 | length-delimited).
_RAW_PACKED_TAG: dict[int, bytes] = {
    DT.DT_FLOAT: bytes([(5 << 3) | 2]),
    DT.DT_DOUBLE: bytes([(6 << 3) | 2]),
    DT.DT_BOOL: bytes([(11 << 3) | 2]),
}


class TensorError(ValueError):
    """The TensorProto cannot be turned into an array; the message says why."""


def dtype_name(dtype: int) -> str:
    try:
        return DT.Name(dtype)
    except ValueError:
        return f"DataType({dtype})"


def numpy_dtype(dtype: int) -> np.dtype:
    try:
        return NUMPY[dtype]
    except KeyError:
        raise TensorError(f"dtype {dtype_name(dtype)} is not supported") from None


def dtype_of(array: np.ndarray) -> int:
    """The DataType for a numpy array; bytes/str arrays are DT_STRING."""
    kind = array.dtype.kind
    if kind in "OSU":
        return DT_STRING
    try:
        return _FROM_NUMPY[array.dtype]
    except KeyError:
        raise TensorError(f"numpy dtype {array.dtype} has no TensorFlow DataType") from None


def shape_of(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise TensorError("a tensor value cannot have unknown rank")
    dims = tuple([d.size for d in shape.dim])
    if dims and min(dims) < 0:
        raise TensorError(f"a tensor value cannot have negative dimensions, got {list(dims)}")
    return dims


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Decode like TensorFlow: raw content wins; short typed fields repeat their last value."""
    code = proto.dtype
    dtype = numpy_dtype(code)
    shape = shape_of(proto)
    count = math.prod(shape)
    content = proto.tensor_content
    if content:
        if code == DT_STRING:
            return _decode_string_content(content, count).reshape(shape)
        if len(content) != count * dtype.itemsize:
            raise TensorError(
                f"tensor_content has {len(content)} bytes, expected {count * dtype.itemsize} "
                f"for shape {list(shape)} of {dtype_name(code)}"
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape)
    return _from_typed(proto, code, dtype, shape, count)


def _from_typed(
    proto: tensor_pb2.TensorProto, code: int, dtype: np.dtype, shape: tuple[int, ...], count: int
) -> np.ndarray:
    values: Sequence = getattr(proto, _FIELD[code])
    if code == DT_STRING:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
    elif code == DT_HALF:
        flat = np.asarray(values, dtype=np.uint16).view(np.float16)
    elif code in (DT_COMPLEX64, DT_COMPLEX128):
        real = np.asarray(values, dtype=np.float32 if code == DT_COMPLEX64 else None)
        if real.size % 2:
            raise TensorError("complex values come in (real, imaginary) pairs")
        flat = real.astype(dtype.type(0).real.dtype).view(dtype)
    else:
        flat = np.asarray(values, dtype=dtype)
    n = flat.shape[0]
    if n == count:
        return flat.reshape(shape)
    if n > count:
        return flat[:count].reshape(shape)
    if n == 0:
        return np.full(shape, b"" if code == DT_STRING else 0, dtype=dtype)
    out = np.empty(count, dtype=dtype)
    out[:n] = flat
    out[n:] = flat[-1]
    return out.reshape(shape)


def _decode_string_content(content: bytes, count: int) -> np.ndarray:
    """TF's content form for strings: all lengths as varints, then the bytes joined."""
    lengths: list[int] = []
    pos = 0
    try:
        for _ in range(count):
            value = shift = 0
            while True:
                byte = content[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            lengths.append(value)
    except IndexError:
        raise TensorError("string tensor_content ends inside its length prefix") from None
    if pos + sum(lengths) != len(content):
        raise TensorError("string tensor_content length does not match its elements")
    out = np.empty(count, dtype=object)
    for i, n in enumerate(lengths):
        out[i] = content[pos : pos + n]
        pos += n
    return out


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fill(
    proto: tensor_pb2.TensorProto, array: np.ndarray, *, as_content: bool = False
) -> tensor_pb2.TensorProto:
    """Write ``array`` into ``proto`` (typically a map entry of a response, to avoid a copy).

    Typed fields are the default because TF Serving answers that way and clients read
    ``float_val`` directly; ``as_content`` gives raw ``tensor_content`` (strings never).
    """
    dtype = dtype_of(array)
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add().size = size
    if dtype == DT_STRING:
        proto.string_val.extend(_as_bytes(v) for v in array.ravel())
        return proto
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    if as_content:
        proto.tensor_content = array.tobytes()  # row-major whatever the array's strides
    elif dtype in _RAW_PACKED_TAG:
        if array.size:
            payload = array.tobytes()
            proto.MergeFromString(_RAW_PACKED_TAG[dtype] + _varint(len(payload)) + payload)
    elif dtype == DT_HALF:
        proto.half_val.extend(array.view(np.uint16).ravel().tolist())
    elif dtype in (DT_COMPLEX64, DT_COMPLEX128):
        field = getattr(proto, _FIELD[dtype])
        field.extend(array.ravel().view(array.real.dtype).tolist())
    else:
        getattr(proto, _FIELD[dtype]).extend(array.ravel().tolist())
    return proto


def fill_value(
    proto: tensor_pb2.TensorProto, value: object, *, as_content: bool | None = None
) -> tensor_pb2.TensorProto:
    """``fill`` for any array-like, choosing like ``tf.make_tensor_proto`` by default: raw
    content for multi-element numerics, typed fields otherwise (text goes in as UTF-8)."""
    array = np.asarray(value)
    if as_content is None:
        as_content = array.size > 1 and array.dtype.kind not in "OSUb"
    return fill(proto, array, as_content=as_content)


def make_tensor_proto(array: object, *, as_content: bool | None = None) -> tensor_pb2.TensorProto:
    """Like ``tf.make_tensor_proto`` for clients: raw content for multi-element numerics."""
    return fill_value(tensor_pb2.TensorProto(), array, as_content=as_content)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):  # np.bytes_ too
        return value
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()
