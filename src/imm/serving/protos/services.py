"""gRPC method table of the two TensorFlow Serving services, read from our descriptors.

We wire handlers and client stubs from this table instead of generating ``*_pb2_grpc``
modules: those pin the grpcio version they were generated with, and the table lets the
server attach its own (de)serializers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory

from imm.serving.protos import model_service_pb2, prediction_service_pb2

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


@dataclass(frozen=True)
class Method:
    service: str
    name: str
    request: Any  # message class
    response: Any  # message class

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


def _methods() -> dict[str, Method]:
    table: dict[str, Method] = {}
    for module, service in (
        (prediction_service_pb2, PREDICTION_SERVICE),
        (model_service_pb2, MODEL_SERVICE),
    ):
        desc = module.DESCRIPTOR.services_by_name[service.rsplit(".", 1)[1]]
        for m in desc.methods:
            table[m.name] = Method(
                service,
                m.name,
                message_factory.GetMessageClass(m.input_type),
                message_factory.GetMessageClass(m.output_type),
            )
    return table


METHODS: dict[str, Method] = _methods()


class Stub:
    """Client stub: ``Stub(channel).Predict(request, timeout=...)`` for every method."""

    def __init__(self, channel: grpc.Channel) -> None:
        for name, m in METHODS.items():
            setattr(
                self,
                name,
                channel.unary_unary(
                    m.path,
                    request_serializer=m.request.SerializeToString,
                    response_deserializer=m.response.FromString,
                ),
            )

    def __getattr__(self, name: str) -> grpc.UnaryUnaryMultiCallable:  # for type checkers
        raise AttributeError(name)
