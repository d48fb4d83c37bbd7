"""Runs the unmodified official TensorFlow Serving client against a server; prints JSON.

Run as a separate process (``python official_client.py ADDRESS``): the official modules and
ours declare the same protobuf names, so the test keeps them apart (protocols.md 0.3).
"""

from __future__ import annotations

import json
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def main(address: str, dtypes_address: str) -> dict:
    out: dict = {}
    channel = grpc.insecure_channel(address)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "demo"
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    request.inputs["a"].CopyFrom(tf.make_tensor_proto(a))
    request.inputs["b"].CopyFrom(tf.make_tensor_proto(2.0, shape=[2, 3]))  # broadcast form
    reply = stub.Predict(request, timeout=60)
    out["sum"] = tf.make_ndarray(reply.outputs["sum"]).tolist()
    out["prod"] = tf.make_ndarray(reply.outputs["prod"]).tolist()
    out["version"] = reply.model_spec.version.value
    out["signature_name"] = reply.model_spec.signature_name

    meta = get_model_metadata_pb2.GetModelMetadataRequest()
    meta.model_spec.name = "demo"
    meta.metadata_field.append("signature_def")
    reply = stub.GetModelMetadata(meta, timeout=60)
    defs = get_model_metadata_pb2.SignatureDefMap()
    out["unpacked"] = reply.metadata["signature_def"].Unpack(defs)
    sig = defs.signature_def["serving_default"]
    out["inputs"] = {k: [tf.dtypes.as_dtype(v.dtype).name, [d.size for d in v.tensor_shape.dim]]
                     for k, v in sig.inputs.items()}  # fmt: skip

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "demo"
    reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, timeout=60)
    entry = reply.model_version_status[0]
    out["status"] = [entry.version, get_model_status_pb2.ModelVersionStatus.State.Name(entry.state)]

    bad = predict_pb2.PredictRequest()
    bad.model_spec.name = "demo"
    bad.inputs["a"].CopyFrom(tf.make_tensor_proto(a))
    try:
        stub.Predict(bad, timeout=60)
    except grpc.RpcError as exc:
        out["error"] = [exc.code().name, exc.details()]

    values = {
        "f32": np.array([[1.5, -2.0]], np.float32),
        "f64": np.array([[0.1, 1e300]], np.float64),
        "i32": np.array([[-3, 7]], np.int32),
        "i64": np.array([[-(2**40), 9]], np.int64),
        "flag": np.array([[True, False]]),
        "text": np.array([["a", "é"]]),
    }
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "demo"
    for key, value in values.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    dstub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(dtypes_address))
    reply = dstub.Predict(request, timeout=60)
    out["dtypes"] = {
        k: [str(tf.make_ndarray(v).dtype), tf.make_ndarray(v).tolist()]
        for k, v in reply.outputs.items()
    }
    for key in out["dtypes"]:
        if key == "text_out":
            out["dtypes"][key][1] = [[s.decode() for s in row] for row in out["dtypes"][key][1]]
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
