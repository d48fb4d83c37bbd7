"""Our own TensorFlow Serving protocol files and the Python modules generated from them.

The ``.proto`` files beside this module are written from the public protocol description;
``generated/`` is produced by ``python -m imm.serving.protos.build`` and committed, so an
installed package needs neither protoc nor TensorFlow. Everything registers in a private
descriptor pool (see ``pool``), so these modules coexist with TensorFlow's in one process.
"""

from __future__ import annotations

from imm.serving.protos.generated.tensorflow.core.framework import (
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from imm.serving.protos.generated.tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2
from imm.serving.protos.generated.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
    regression_pb2,
    status_pb2,
)

__all__ = [
    "classification_pb2",
    "error_codes_pb2",
    "get_model_metadata_pb2",
    "get_model_status_pb2",
    "inference_pb2",
    "meta_graph_pb2",
    "model_management_pb2",
    "model_pb2",
    "model_service_pb2",
    "predict_pb2",
    "prediction_service_pb2",
    "regression_pb2",
    "status_pb2",
    "tensor_pb2",
    "tensor_shape_pb2",
    "types_pb2",
]
