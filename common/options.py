"""Command-line values shared by the management commands: each bad value is a
``CommandError`` naming its flag."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError


def decimal_option(value: str, flag: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{flag}: {value!r} is not a number") from None
    if not number.is_finite():
        raise CommandError(f"{flag}: {value!r} is not a finite number")
    return number


def day_option(
    value: str | None, flag: str, *, last: bool = False, required: bool = False
) -> datetime | None:
    """Midnight UTC of the day, or its last microsecond with ``last``; None when not given
    (a ``CommandError`` when ``required``)."""
    if not value:
        if required:
            raise CommandError(f"{flag}: a date is required (YYYY-MM-DD)")
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{flag}: {value!r} is not a date (YYYY-MM-DD)") from None
    moment = datetime.combine(day, time(), tzinfo=UTC)
    return moment + timedelta(days=1, microseconds=-1) if last else moment
