"""Errors of the risk app that the shared hierarchy does not have."""

from __future__ import annotations

from quant.core.errors import ApplicationError


class PermissionDeniedError(ApplicationError):
    """The user may not do this (wrong admin code, deciding one's own limit change)."""

    code = "permission_denied"
    http_status = 403
