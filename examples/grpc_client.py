#!/usr/bin/env python3
"""Call a TF-Serving-compatible model server (an IMM endpoint or `python -m imm.serving`).

    python examples/grpc_client.py --address localhost:8500 --model-name demo
    python examples/grpc_client.py --address demo-acme.imm.localhost:8443 --model-name demo \\
        --ca-cert ca.pem --client-cert client.pem --client-key client.key

Sends one Predict with random data shaped from the model's metadata (or --input FILE.npy
for a single-input model) and prints each output. It uses only grpcio, numpy and the
protocol modules shipped in the `imm` package; the official `tensorflow-serving-api`
client works the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
import numpy as np

from imm.serving.protos import get_model_metadata_pb2, predict_pb2
from imm.serving.protos.services import Stub
from imm.serving.tensors import NUMPY, make_tensor_proto, to_ndarray


def channel(args: argparse.Namespace) -> grpc.Channel:
    if not (args.ca_cert or args.client_cert):
        return grpc.insecure_channel(args.address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=args.ca_cert.read_bytes() if args.ca_cert else None,
        private_key=args.client_key.read_bytes() if args.client_key else None,
        certificate_chain=args.client_cert.read_bytes() if args.client_cert else None,
    )
    options = []
    if args.server_name:  # TLS name and HTTP/2 authority, which the ingress routes on
        options = [
            ("grpc.ssl_target_name_override", args.server_name),
            ("grpc.default_authority", args.server_name),
        ]
    return grpc.secure_channel(args.address, credentials, options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-version", type=int)
    parser.add_argument("--input", type=Path, help=".npy file for a single-input model")
    parser.add_argument("--ca-cert", type=Path)
    parser.add_argument("--client-cert", type=Path)
    parser.add_argument("--client-key", type=Path)
    parser.add_argument("--server-name")
    args = parser.parse_args()

    stub = Stub(channel(args))
    meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta.model_spec.name = args.model_name
    defs = get_model_metadata_pb2.SignatureDefMap()
    stub.GetModelMetadata(meta, timeout=30).metadata["signature_def"].Unpack(defs)
    signature = defs.signature_def["serving_default"]

    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model_name
    if args.model_version is not None:
        request.model_spec.version.value = args.model_version
    rng = np.random.default_rng()
    for alias, info in signature.inputs.items():
        if args.input:
            data = np.load(args.input)
        else:
            shape = [1 if d.size < 0 else d.size for d in info.tensor_shape.dim]
            dtype = NUMPY[info.dtype]
            data = (
                np.full(shape, b"text", dtype=object)
                if dtype.kind == "O"
                else rng.random(shape).astype(dtype)
            )
        request.inputs[alias].CopyFrom(make_tensor_proto(data))

    reply = stub.Predict(request, timeout=30)
    print(f"model {reply.model_spec.name} version {reply.model_spec.version.value}")
    for alias, tensor in reply.outputs.items():
        value = to_ndarray(tensor)
        print(f"{alias} {value.dtype} {list(value.shape)}: {value.ravel()[:8].tolist()}")


if __name__ == "__main__":
    main()
