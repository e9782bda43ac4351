"""One base error type: an HTTP status and a stable machine code for every expected failure."""

from __future__ import annotations

from typing import Any, ClassVar


class AtiendeError(Exception):
    """Base for every error a caller can expect; edges turn it into a JSON 4xx body."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "The request could not be processed."

    def __init__(
        self, message: str | None = None, *, code: str | None = None, **details: Any
    ) -> None:
        self.message = message or self.default_message
        self.error_code = code or self.code
        self.details = details
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.error_code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class NotFound(AtiendeError):
    status_code = 404
    code = "not_found"
    default_message = "The resource does not exist."

    def __init__(self, resource: str, message: str | None = None) -> None:
        super().__init__(
            message or f"{resource.replace('_', ' ').capitalize()} not found.",
            code=f"{resource}_not_found",
        )


class ValidationFailed(AtiendeError):
    status_code = 422
    code = "validation_error"
    default_message = "The request is not valid."


class Conflict(AtiendeError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class NotAuthenticated(AtiendeError):
    status_code = 401
    code = "not_authenticated"
    default_message = "Authentication is required."


class InvalidCredentials(AtiendeError):
    status_code = 401
    code = "invalid_credentials"
    default_message = "E-mail or password is wrong."


class PermissionDenied(AtiendeError):
    status_code = 403
    code = "permission_denied"
    default_message = "You are not allowed to do this."


class CsrfFailed(AtiendeError):
    status_code = 403
    code = "csrf_failed"
    default_message = "Missing or wrong CSRF token."


class RateLimited(AtiendeError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many attempts; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)


class TenantScopeMissing(RuntimeError):
    """A programming error: tenant data was queried without a tenant scope."""
