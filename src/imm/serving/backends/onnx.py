"""ONNX models through onnxruntime: names, dtypes and shapes come from the graph itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from imm.serving.backends.base import DEFAULT_SIGNATURE, RuntimeOptions, Signature, TensorSpec
from imm.serving.errors import ModelError, ServingError
from imm.serving.protos import meta_graph_pb2, types_pb2

DT = types_pb2.DataType
INVALID = grpc.StatusCode.INVALID_ARGUMENT

_DTYPES: dict[str, int] = {
    "tensor(float)": DT.DT_FLOAT,
    "tensor(double)": DT.DT_DOUBLE,
    "tensor(int32)": DT.DT_INT32,
    "tensor(int64)": DT.DT_INT64,
    "tensor(bool)": DT.DT_BOOL,
    "tensor(string)": DT.DT_STRING,
    "tensor(uint8)": DT.DT_UINT8,
    "tensor(int8)": DT.DT_INT8,
    "tensor(int16)": DT.DT_INT16,
    "tensor(uint16)": DT.DT_UINT16,
    "tensor(uint32)": DT.DT_UINT32,
    "tensor(uint64)": DT.DT_UINT64,
    "tensor(float16)": DT.DT_HALF,
}


def _spec(arg: ort.NodeArg, what: str) -> TensorSpec:
    dtype = _DTYPES.get(arg.type)
    if dtype is None:
        raise ModelError(
            f"ONNX {what} {arg.name!r} has type {arg.type}, which TensorFlow Serving's "
            "protocol cannot carry (supported: " + ", ".join(sorted(_DTYPES)) + ")"
        )
    shape = arg.shape
    dims = None if shape is None else tuple(d if isinstance(d, int) else -1 for d in shape)
    return TensorSpec(arg.name, dtype, dims)


class OnnxBackend:
    platform = "onnxruntime"

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = options.inter_op_threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spin = "1" if options.allow_spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        try:
            self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime cannot load {path.name}: {exc}") from None
        inputs = {a.name: _spec(a, "input") for a in self._session.get_inputs()}
        outputs = {a.name: _spec(a, "output") for a in self._session.get_outputs()}
        self._strings = {a for a, s in inputs.items() if s.dtype == DT.DT_STRING}
        self.signatures = {DEFAULT_SIGNATURE: Signature(inputs, outputs)}
        # The binding under InferenceSession.run: skips per-call Python checks (~10 us).
        self._run = getattr(self._session, "_sess", self._session).run

    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        return {key: sig.to_proto() for key, sig in self.signatures.items()}

    def predict(
        self, signature: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        feeds = inputs
        if self._strings:
            feeds = dict(inputs)
            for alias in self._strings.intersection(feeds):
                feeds[alias] = _text(alias, feeds[alias])
        try:
            results = self._run(outputs, feeds, None)
        except Exception as exc:
            text = str(exc)
            code = INVALID if "INVALID_ARGUMENT" in text else grpc.StatusCode.INTERNAL
            raise ServingError(code, f"onnxruntime: {text}") from None
        # String outputs hold str: tensors.fill encodes them.
        return dict(zip(outputs, results, strict=True))


def _text(alias: str, array: np.ndarray) -> np.ndarray:
    """onnxruntime string tensors hold text; TF strings are bytes."""
    try:
        return (
            np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object])(
                array
            )
            if array.size
            else array
        )
    except UnicodeDecodeError:
        raise ServingError(
            INVALID, f"input {alias}: ONNX string tensors must be valid UTF-8"
        ) from None
