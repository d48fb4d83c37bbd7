"""The one model a server process serves: its lifecycle state and, once loaded, its servable.

TF Serving reports versions through a state monitor (START, LOADING, AVAILABLE, ..., END);
``ModelState`` is that monitor for a single version, read by GetModelStatus and health.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imm.serving.backends.base import Backend
from imm.serving.protos import get_model_metadata_pb2, get_model_status_pb2
from imm.serving.tensors import numpy_dtype

State = get_model_status_pb2.ModelVersionStatus.State
SIGNATURE_DEF = "signature_def"
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


class Servable:
    """A loaded version, with what every request needs computed once."""

    def __init__(self, version: int, backend: Backend) -> None:
        self.version = version
        self.backend = backend
        self.signatures = backend.signatures
        defs = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in backend.signature_defs().items():
            defs.signature_def[key].CopyFrom(sig)
        self.signature_def_map = defs.SerializeToString(deterministic=True)

    def warm_up(self) -> None:
        """One inference per servable signature, so the first client call is not slow."""
        for key, sig in self.signatures.items():
            inputs = {
                alias: _example(spec.dtype, spec.example_shape())
                for alias, spec in sig.inputs.items()
            }
            self.backend.predict(key, inputs, sig.output_names)


def _example(dtype: int, shape: tuple[int, ...]) -> np.ndarray:
    np_dtype = numpy_dtype(dtype)
    if np_dtype.kind == "O":
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=np_dtype)


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: int
    error_code: int = 0
    error_message: str = ""


class ModelState:
    """What this process knows about its model.

    Only the loader (the main thread) writes; handlers read each attribute once per call,
    and an attribute assignment is atomic, so no lock is needed.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.status: VersionStatus | None = None
        self.servable: Servable | None = None  # set only when AVAILABLE

    def set(self, version: int, state: int, code: int = 0, message: str = "") -> None:
        self.status = VersionStatus(version, state, code, message)
        if state != State.AVAILABLE:
            self.servable = None

    def make_available(self, servable: Servable) -> None:
        self.servable = servable
        self.status = VersionStatus(servable.version, State.AVAILABLE)
