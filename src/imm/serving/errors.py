"""Errors a request or a model can cause, carrying the gRPC status code they map to."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A request failed in a way the client should hear about; the server carries on."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ModelError(Exception):
    """A model version cannot be fetched or loaded; the server exits non-zero."""
