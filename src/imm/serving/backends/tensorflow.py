"""TensorFlow SavedModels (the layout the original platform served), via tensorflow-cpu.

TensorFlow is imported only here, and only when a version holds a SavedModel: it is an
optional extra (``pip install 'imm[tensorflow]'``). Metadata copies every SignatureDef of
the serving MetaGraphDef, as TF Serving does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from imm.serving.backends.base import RuntimeOptions, Signature, TensorSpec
from imm.serving.errors import ModelError, ServingError
from imm.serving.protos import meta_graph_pb2

SERVE_TAG = "serve"
INIT_OP_SIGNATURE = "__saved_model_init_op"
#: TensorFlow's error codes are gRPC's: int code -> status.
_STATUS: dict[int, grpc.StatusCode] = {status.value[0]: status for status in grpc.StatusCode}


def _import_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelError(
            "this version is a TensorFlow SavedModel, but tensorflow is not installed "
            "(pip install 'imm[tensorflow]')"
        ) from None
    return tf


def _spec(info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(d.size for d in shape.dim)
    return TensorSpec(info.name, info.dtype, dims)


class TensorFlowBackend:
    platform = "tensorflow"

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        tf = _import_tensorflow()
        self._tf = tf
        try:
            tf.config.threading.set_intra_op_parallelism_threads(options.intra_op_threads)
            tf.config.threading.set_inter_op_parallelism_threads(options.inter_op_threads)
        except RuntimeError:
            pass  # already initialised in this process
        self._defs = self._read_signature_defs(path)
        try:
            self._model = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        except Exception as exc:
            raise ModelError(f"TensorFlow cannot load the SavedModel at {path}: {exc}") from None
        self._functions = dict(self._model.signatures)
        self.signatures = {
            key: Signature(
                {a: _spec(i) for a, i in d.inputs.items()},
                {a: _spec(i) for a, i in d.outputs.items()},
                d.method_name,
            )
            for key, d in self._defs.items()
            if key in self._functions
        }

    def _read_signature_defs(self, path: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
        from tensorflow.core.protobuf import saved_model_pb2

        saved = saved_model_pb2.SavedModel()
        try:
            saved.ParseFromString((path / "saved_model.pb").read_bytes())
        except Exception as exc:
            raise ModelError(f"{path / 'saved_model.pb'} is not a SavedModel: {exc}") from None
        for graph in saved.meta_graphs:
            if SERVE_TAG in graph.meta_info_def.tags:
                break
        else:
            raise ModelError(f"the SavedModel at {path} has no MetaGraph tagged {SERVE_TAG!r}")
        # Re-parse into our own messages; fields we do not declare survive as unknown fields.
        return {
            key: meta_graph_pb2.SignatureDef.FromString(value.SerializeToString())
            for key, value in graph.signature_def.items()
        }

    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        return dict(self._defs)

    def predict(
        self, signature: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        tf = self._tf
        try:
            result = self._functions[signature](
                **{alias: tf.constant(value) for alias, value in inputs.items()}
            )
        except tf.errors.OpError as exc:
            code = tf.errors.error_code_from_exception_type(type(exc))
            raise ServingError(_STATUS.get(code, grpc.StatusCode.INTERNAL), exc.message) from None
        except (TypeError, ValueError) as exc:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        return {alias: result[alias].numpy() for alias in outputs}
