"""The error envelope every Instantly error body uses, and the exception handlers raise for it.

`{"statusCode": 404, "error": "Not Found", "message": "..."}`: the reason phrase is the standard
HTTP one, as Fastify (Instantly's server) writes it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def envelope(status: int, message: str) -> dict[str, Any]:
    """The JSON error body for `status`."""
    return {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message}


class ApiError(Exception):
    """Raised by a route handler to answer with an error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return envelope(self.status, self.message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str = "Resource not found") -> ApiError:
    return ApiError(404, message)
