"""Formatting filters of the market data pages."""

from __future__ import annotations

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def stale_lag(lag: timedelta | None) -> str:
    """A lag as a short human string: '3 d', '5 h', '12 min'."""
    if lag is None:
        return ""
    seconds = int(lag.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400} d behind"
    if seconds >= 3600:
        return f"{seconds // 3600} h behind"
    return f"{max(1, seconds // 60)} min behind"
