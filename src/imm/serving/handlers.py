"""TF Serving request semantics, independent of the gRPC plumbing and of the runtime.

Checks run in TF Serving's order and fail with its texts (protocols.md 5.3 to 5.6), so a
client that matches on them keeps working; dtype and shape checks, which TF Serving leaves
to the runtime, name the input and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from grpc import StatusCode

from imm.serving.backends.base import DEFAULT_SIGNATURE, Signature
from imm.serving.errors import ServingError
from imm.serving.model import SIGNATURE_DEF, SIGNATURE_DEF_MAP_URL, ModelState, Servable
from imm.serving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)
from imm.serving.tensors import TensorError, dtype_name, fill, to_ndarray

INVALID = StatusCode.INVALID_ARGUMENT


def _braces(names: Iterable[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def _shape(dims: tuple[int, ...] | None) -> str:
    return "<unknown rank>" if dims is None else "[" + ",".join(map(str, dims)) + "]"


class Handlers:
    """One instance per server; every method is safe to call from many threads."""

    def __init__(self, state: ModelState, *, tensor_content: bool = False) -> None:
        self.state = state
        self.tensor_content = tensor_content

    # -- lookups -------------------------------------------------------------------------

    def _servable(self, request: object) -> tuple[Servable, model_pb2.ModelSpec]:
        if not request.HasField("model_spec"):  # type: ignore[attr-defined]
            raise ServingError(INVALID, "Missing ModelSpec")
        spec: model_pb2.ModelSpec = request.model_spec  # type: ignore[attr-defined]
        if not spec.name:
            raise ServingError(INVALID, "ModelSpec has no name specified.")
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            raise ServingError(
                INVALID,
                "ModelSpec has 'version_label' set, but it is not currently allowed by the server.",
            )
        servable = self.state.servable
        wanted = spec.version.value if choice == "version" else None
        if (
            servable is None
            or spec.name != self.state.name
            or (wanted is not None and wanted != servable.version)
        ):
            what = f"Latest({spec.name})" if wanted is None else f"Specific({spec.name}, {wanted})"
            raise ServingError(StatusCode.NOT_FOUND, f"Servable not found for request: {what}")
        return servable, spec

    @staticmethod
    def _signature(servable: Servable, key: str) -> tuple[str, Signature]:
        key = key or DEFAULT_SIGNATURE
        sig = servable.signatures.get(key)
        if sig is None:
            raise ServingError(
                StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.'
            )
        return key, sig

    # -- Predict ---------------------------------------------------------------------------

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        servable, spec = self._servable(request)
        key, sig = self._signature(servable, spec.signature_name)
        inputs = self._inputs(request, sig)
        outputs = self._output_aliases(request.output_filter, sig)
        results = servable.backend.predict(key, inputs, outputs)
        response = predict_pb2.PredictResponse()
        out_spec = response.model_spec
        out_spec.name = spec.name
        out_spec.signature_name = key
        out_spec.version.value = servable.version
        for alias in outputs:
            fill(response.outputs[alias], results[alias], as_content=self.tensor_content)
        return response

    @staticmethod
    def _inputs(request: predict_pb2.PredictRequest, sig: Signature) -> dict[str, np.ndarray]:
        sent = request.inputs
        expected = sig.inputs
        keys = set(sent.keys())
        if keys != sig.input_names and not sig.required_inputs <= keys <= sig.input_names:
            required = sig.required_inputs
            if len(sent) != len(expected) and not sig.defaults:
                extra = set(sent.keys()) - set(expected)
                missing = set(expected) - set(sent.keys())
                raise ServingError(
                    INVALID,
                    f"input size does not match signature: {len(sent)}!={len(expected)} "
                    f"len({_braces(sent.keys())}) != len({_braces(expected)}). "
                    f"Sent extra: {_braces(extra)}. Missing but required: {_braces(missing)}.",
                )
            for alias in sent:
                if alias not in expected:
                    raise ServingError(
                        INVALID,
                        f"Inputs contains invalid name. Used request inputs: "
                        f"{_braces(sent.keys())}, request input: {alias}",
                    )
            for alias in sorted(required - set(sent.keys())):
                raise ServingError(
                    INVALID,
                    f"Signature input alias: {alias}(feed name: {expected[alias].name}) not "
                    f"found in request and no default value provided. Inputs expected to be in "
                    f"the request {_braces(required)}, or default input alias set: "
                    f"{_braces(sig.defaults)}",
                )
        arrays: dict[str, np.ndarray] = dict(sig.defaults) if sig.defaults else {}
        for alias, proto in sent.items():
            want = expected[alias]
            if proto.dtype != want.dtype:
                raise ServingError(
                    INVALID,
                    f"input {alias}: expected dtype {dtype_name(want.dtype)}, "
                    f"got {dtype_name(proto.dtype)}",
                )
            try:
                array = to_ndarray(proto)
            except TensorError as exc:
                raise ServingError(INVALID, f"tensor parsing error: {alias} ({exc})") from None
            if not want.accepts(array.shape):
                raise ServingError(
                    INVALID,
                    f"input {alias}: expected shape {_shape(want.shape)} (-1: any size), "
                    f"got {_shape(array.shape)}",
                )
            arrays[alias] = array
        return arrays

    @staticmethod
    def _output_aliases(output_filter: Sequence[str], sig: Signature) -> Sequence[str]:
        if not output_filter:
            return sig.output_names
        wanted = list(output_filter)
        seen: set[str] = set()
        for alias in wanted:
            if alias not in sig.outputs:
                raise ServingError(
                    INVALID,
                    f"output tensor alias not found in signature: {alias} "
                    f"Outputs expected to be in the set {_braces(sig.outputs)}.",
                )
            if alias in seen:
                raise ServingError(INVALID, f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        return wanted

    # -- metadata and status ---------------------------------------------------------------

    def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise ServingError(INVALID, "Missing ModelSpec")
        if not request.metadata_field:
            raise ServingError(
                INVALID, "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for name in request.metadata_field:
            if name != SIGNATURE_DEF:
                raise ServingError(INVALID, f"Metadata field {name} is not supported")
        servable, spec = self._servable(request)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = servable.version
        entry = response.metadata[SIGNATURE_DEF]
        entry.type_url = SIGNATURE_DEF_MAP_URL
        entry.value = servable.signature_def_map
        return response

    def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            raise ServingError(INVALID, "Missing ModelSpec")
        spec = request.model_spec
        if not spec.name:
            raise ServingError(INVALID, "ModelSpec has no name specified.")
        status = self.state.status
        known = status is not None and spec.name == self.state.name
        if spec.HasField("version"):
            if not known or status.version != spec.version.value:  # type: ignore[union-attr]
                raise ServingError(
                    StatusCode.NOT_FOUND,
                    f"Could not find version {spec.version.value} of model {spec.name}",
                )
        elif not known:
            raise ServingError(
                StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}"
            )
        assert status is not None
        response = get_model_status_pb2.GetModelStatusResponse()
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = status.state  # type: ignore[assignment]
        entry.status.SetInParent()  # present even when OK, as TF Serving sends it
        entry.status.error_code = status.error_code  # type: ignore[assignment]
        entry.status.error_message = status.error_message
        return response
