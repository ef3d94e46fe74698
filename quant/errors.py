"""One error hierarchy for the platform; ``common.api`` maps it to HTTP once."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """Base of every error a user or operator can act on."""

    code = "application_error"
    http_status = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(ApplicationError):
    code = "validation_error"
    http_status = 422


class NotFoundError(ApplicationError):
    code = "not_found"
    http_status = 404


class ConflictError(ApplicationError):
    code = "conflict"
    http_status = 409


class ConfigurationError(ApplicationError):
    code = "configuration_error"
    http_status = 500


class ServiceUnavailableError(ApplicationError):
    code = "service_unavailable"
    http_status = 503


class PermissionDeniedError(ApplicationError):
    """The user may not do this (a wrong admin code, deciding one's own request)."""

    code = "permission_denied"
    http_status = 403


class SelfApprovalError(PermissionDeniedError):
    """The four-eyes rule: whoever asked for a change may not approve it (every approval kind:
    reviews, promotions, risk-limit changes)."""

    code = "self_approval"


class GateClosedError(ConflictError):
    """A human gate is closed: the strategy's mode does not allow what was asked (an order in a
    mode it was not promoted to, a backtest of an unreviewed version)."""

    code = "gate_closed"


class LiveTradingDisabledError(ConflictError):
    """An order for the live account while this deployment has no live broker (live trading
    switched off, or no keys): nothing is stored or sent."""

    code = "live_trading_disabled"


class IdempotencyKeyReusedError(ValidationError):
    """An ``Idempotency-Key`` sent again with a different request: nothing is done (the
    original's answer belongs to the original request)."""

    code = "idempotency_key_reused"
