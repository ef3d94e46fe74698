"""Idempotent creation: a client that sends ``Idempotency-Key`` with a request and retries it
(its connection dropped: it cannot tell "placed" from "never sent") gets the resource the
first request made instead of a second one.

The key is stored on the created row itself (``idempotency_key``, unique when not empty,
scoped per user by :func:`idempotency_scope`) with a fingerprint of what was asked, written
by the same INSERT that creates the row: two concurrent requests with one key cannot both
create (the second INSERT fails on the unique index and finds the first's row). A key sent
again with a different request is refused (422 ``idempotency_key_reused``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import IntegrityError, models

from quant.errors import IdempotencyKeyReusedError, ValidationError

M = TypeVar("M", bound=models.Model)

KEY_MAX_LENGTH = 100
KEY_PATTERN = r"^[\x21-\x7e]{1,100}$"  # printable ASCII without spaces, e.g. a UUID
_KEY = re.compile(KEY_PATTERN)
FIELD_LENGTH = 120  # "<user id>:<key>"


@dataclass(frozen=True)
class Once(Generic[M]):
    """What an idempotent create gave: the row, and whether an earlier request made it."""

    value: M
    replayed: bool


def idempotency_scope(user_id: int | None, key: str | None) -> str:
    """The stored key of ``key`` sent by user ``user_id`` ("" when no key was sent): one
    user's key never finds another user's resource."""
    if key is None or key == "":
        return ""
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key: 1 to 100 printable ASCII characters without spaces, e.g. a UUID",
            details={"field": "Idempotency-Key"},
        )
    return f"{user_id or 0}:{key}"


def request_fingerprint(**fields: Any) -> str:
    """A digest of what was asked (values as text, keys sorted)."""
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def created_once(model: type[M], key: str, fingerprint: str, create: Callable[[], M]) -> Once[M]:
    """``create()`` unless a row of ``model`` already carries ``key``; that row otherwise
    (refused when it was made by a different request). ``create`` must store ``key`` and
    ``fingerprint`` on the row it inserts, in an ``atomic`` block of its own (a savepoint
    under the caller's transaction), so that losing the race to a concurrent request with
    the same key leaves the caller's transaction usable."""
    if not key:
        return Once(create(), replayed=False)
    existing = _existing(model, key, fingerprint)
    if existing is not None:
        return Once(existing, replayed=True)
    try:
        return Once(create(), replayed=False)
    except IntegrityError:
        existing = _existing(model, key, fingerprint)
        if existing is None:
            raise
        return Once(existing, replayed=True)


def _existing(model: type[M], key: str, fingerprint: str) -> M | None:
    row = model._default_manager.filter(idempotency_key=key).first()
    if row is not None and row.idempotency_fingerprint != fingerprint:  # type: ignore[attr-defined]
        raise IdempotencyKeyReusedError(
            "Idempotency-Key was already used for a different request: nothing was done; "
            "send a new key for a new request",
            details={"field": "Idempotency-Key", "id": row.pk},
        )
    return row


def idempotency_header() -> Any:
    """The optional ``Idempotency-Key`` request header as a django-ninja parameter."""
    from ninja.params import functions

    return functions.Header(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        pattern=KEY_PATTERN,
        description="Optional. A retry with the same key (e.g. a UUID) gets the first "
        "request's result instead of doing it again; the same key with a different request "
        "is 422 idempotency_key_reused. Replays carry Idempotent-Replayed: true.",
    )


def mark_replayed(response: Any, once: Once[Any]) -> None:
    """Tell the client its request was a replay (``Idempotent-Replayed: true``)."""
    if once.replayed:
        response["Idempotent-Replayed"] = "true"
