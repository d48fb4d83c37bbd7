"""Errors that carry their meaning, so every layer can raise them and the API can map them.

Each error's ``status`` is the HTTP status the management API answers with.
"""

from __future__ import annotations


class IMMError(Exception):
    status: int = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(IMMError):
    status = 400


class Unauthenticated(IMMError):
    status = 401


class Forbidden(IMMError):
    status = 403


class NotFound(IMMError):
    status = 404


class Conflict(IMMError):
    status = 409


class TooLarge(IMMError):
    status = 413
