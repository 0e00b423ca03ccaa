"""One exception hierarchy for the whole platform.

Each error carries the HTTP status it maps to and a message written for the person
who has to act on it, so the server, the CLI and the library report failures alike.
"""

from __future__ import annotations

from typing import Any


class BastionError(Exception):
    """Base class: a failure with a user-facing message and an HTTP status."""

    status_code = 500
    code = "internal_error"
    error_type = "server_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigError(BastionError):
    """The configuration file or an environment override is invalid."""

    code = "invalid_config"


class BadRequest(BastionError):
    status_code = 400
    code = "invalid_request"
    error_type = "invalid_request_error"


class AuthenticationFailed(BastionError):
    status_code = 401
    code = "invalid_api_key"
    error_type = "authentication_error"


class PermissionDenied(BastionError):
    status_code = 403
    code = "permission_denied"
    error_type = "permission_error"


class NotFound(BastionError):
    status_code = 404
    code = "not_found"
    error_type = "invalid_request_error"


class Conflict(BastionError):
    status_code = 409
    code = "conflict"
    error_type = "invalid_request_error"


class PayloadTooLarge(BastionError):
    status_code = 413
    code = "prompt_too_large"
    error_type = "invalid_request_error"


class ContentBlocked(BastionError):
    """A guard refused the request's input."""

    status_code = 400
    code = "content_blocked"
    error_type = "invalid_request_error"


class Overloaded(BastionError):
    """The model's queue is full; the client should retry after `retry_after` seconds."""

    status_code = 503
    code = "overloaded"
    error_type = "server_error"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(BastionError):
    """A rate limit or token budget is spent until `retry_after` seconds from now."""

    status_code = 429
    code = "rate_limited"
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GuardUnavailable(BastionError):
    """A guard failed and the policy is to refuse rather than let text through unchecked."""

    status_code = 503
    code = "guard_unavailable"
    error_type = "server_error"


class BackendError(BastionError):
    """A model backend failed (remote server down, bad answer, load failure)."""

    status_code = 502
    code = "backend_error"
    error_type = "server_error"


class ModelUnavailable(BackendError):
    """The model's circuit is open after repeated failures: requests fail fast, without
    waiting on a server that is down, until `retry_after` seconds from now."""

    status_code = 503
    code = "model_unavailable"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuditUnavailable(BastionError):
    """The audit trail cannot be written (a full disk, a database that is down): the
    request is refused rather than answered without its record."""

    status_code = 503
    code = "audit_unavailable"
    error_type = "server_error"
