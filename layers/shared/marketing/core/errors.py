"""Domain errors. Services raise these; `marketing.core.http` maps them to HTTP answers in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a caller can act on. `status` is the HTTP answer, `code` a stable name."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}  # HTTP headers of the answer (Retry-After)
        if code:
            self.code = code


class Unauthorized(DomainError):
    status, code = 401, "UNAUTHORIZED"


class Forbidden(DomainError):
    status, code = 403, "FORBIDDEN"


class NotFound(DomainError):
    status, code = 404, "NOT_FOUND"


class Conflict(DomainError):
    status, code = 409, "CONFLICT"


class Gone(DomainError):
    status, code = 410, "GONE"


class InvalidInput(DomainError):
    """Input that is well-formed but breaks a business rule; names the field in `details`."""

    status, code = 422, "INVALID_INPUT"

    def __init__(self, field: str, message: str, *, code: str | None = None):
        super().__init__(message, details=[{"field": field, "message": message}], code=code)


class BadRequest(DomainError):
    status, code = 400, "BAD_REQUEST"


class MalformedBody(DomainError):
    """A body that cannot be read at all: not UTF-8, bad base64, or JSON nested too deeply."""

    status, code = 400, "MALFORMED_BODY"


class UnsupportedMediaType(DomainError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class TooManyRequests(DomainError):
    status, code = 429, "TOO_MANY_REQUESTS"

    def __init__(self, message: str, *, retry_after: int | None = None, code: str | None = None):
        super().__init__(message, code=code,
                         headers={"Retry-After": str(retry_after)} if retry_after is not None else None)


class ValidationFailed(DomainError):
    """Input that fails its model; `details` name each field (`body.status`), as for Powertools' validation."""

    status, code = 422, "VALIDATION_ERROR"

    @classmethod
    def of(cls, errors: list[dict[str, Any]], *, prefix: tuple[str, ...] = ()) -> ValidationFailed:
        details = [{"field": ".".join(str(part) for part in (*prefix, *e.get("loc", ()))),
                    "message": e.get("msg", e.get("type", "invalid")), "type": e.get("type", "")} for e in errors]
        return cls(f"invalid request: {', '.join(d['field'] for d in details)}", details=details)
