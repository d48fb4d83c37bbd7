"""What every model runtime offers the request handlers: signatures and one predict call.

Handlers validate requests against ``Signature`` before calling ``predict``, so backends
see only arrays of the expected dtypes and compatible shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

from imm.serving.protos import meta_graph_pb2

PREDICT_METHOD = "tensorflow/serving/predict"
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class TensorSpec:
    name: str  # the runtime's own tensor name (TensorInfo.name)
    dtype: int  # tensorflow.DataType
    shape: tuple[int, ...] | None  # None: unknown rank; -1: unknown dimension

    def accepts(self, shape: tuple[int, ...]) -> bool:
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )

    def example_shape(self) -> tuple[int, ...]:
        """A concrete shape for warm-up data: unknown sizes become 1."""
        return tuple(1 if d < 0 else d for d in self.shape or ())


@dataclass(frozen=True, eq=False)
class Signature:
    inputs: Mapping[str, TensorSpec]  # alias -> spec, in model order
    outputs: Mapping[str, TensorSpec]
    method_name: str = PREDICT_METHOD
    defaults: Mapping[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def input_names(self) -> frozenset[str]:
        return frozenset(self.inputs)

    @cached_property
    def output_names(self) -> tuple[str, ...]:
        """Every output alias, in model order: what Predict returns without a filter."""
        return tuple(self.outputs)

    @cached_property
    def required_inputs(self) -> frozenset[str]:
        return frozenset(self.inputs) - frozenset(self.defaults)

    def to_proto(self) -> meta_graph_pb2.SignatureDef:
        proto = meta_graph_pb2.SignatureDef(method_name=self.method_name)
        for target, specs in ((proto.inputs, self.inputs), (proto.outputs, self.outputs)):
            for alias, spec in specs.items():
                info = target[alias]
                info.name = spec.name
                info.dtype = spec.dtype  # type: ignore[assignment]
                if spec.shape is None:
                    info.tensor_shape.unknown_rank = True
                else:
                    info.tensor_shape.SetInParent()
                    for size in spec.shape:
                        info.tensor_shape.dim.add().size = size
        return proto


@dataclass(frozen=True)
class RuntimeOptions:
    intra_op_threads: int = 1  # 0: the runtime decides
    inter_op_threads: int = 0
    # Idle onnxruntime pool threads spin for work by default, which burns the CPU that
    # gRPC threads of concurrent calls need; off unless asked for.
    allow_spinning: bool = False


class Backend(Protocol):
    platform: str  # for logs and metrics: "onnxruntime" or "tensorflow"
    signatures: Mapping[str, Signature]  # the signatures that can serve Predict

    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        """Every signature as metadata reports it (TF models include non-servable ones)."""

    def predict(
        self, signature: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Run one call; ``outputs`` are aliases, already checked to exist.

        Failures the client should hear about raise ``ServingError``. String outputs may
        hold ``str`` or ``bytes`` (``tensors.fill`` encodes text as UTF-8)."""
