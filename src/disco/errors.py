"""Errors that carry a machine-readable code, shared by the API, the CLI and the core."""

from __future__ import annotations

from typing import Any


class DiscoError(Exception):
    """A failure the user can act on. `code` is stable; `message` is for people."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidSpec(DiscoError):
    status = 422
    code = "invalid_spec"


class UnknownFramework(InvalidSpec):
    code = "unknown_framework"


class DependencyCycle(InvalidSpec):
    code = "dependency_cycle"


class InvalidProperty(InvalidSpec):
    code = "invalid_property"


class Forbidden(DiscoError):
    status = 403
    code = "forbidden"


class NotFound(DiscoError):
    status = 404
    code = "not_found"


class Unauthorized(DiscoError):
    status = 401
    code = "unauthorized"


class Conflict(DiscoError):
    status = 409
    code = "conflict"


class ProviderError(DiscoError):
    status = 500
    code = "provider_error"
