"""Template tags of the dashboard: fragments and number formatting (Decimal, never float)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.template.loader import get_template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

CENT = Decimal("0.01")


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


@register.simple_tag(takes_context=True)
def fragment(context: template.Context, name: str, css: str = "") -> SafeString:
    """The fragment ``name`` of the page, in the element ``dashboard.js`` refreshes."""
    spec = context["fragments"][name]
    data: dict[str, Any] = {str(k): v for k, v in context.flatten().items()}
    inner = get_template(spec["template"]).render(data, context.get("request"))
    return format_html(
        '<div class="fragment {}" data-fragment="{}" data-refresh="{}" data-topics="{}">{}</div>',
        css,
        name,
        spec["refresh"],
        spec["topics"],
        SafeString(inner),
    )


@register.filter
def money(value: Any) -> str:
    """1234.5 -> '1,234.50'; nothing -> an en dash."""
    number = _decimal(value)
    if number is None:
        return "\u2013"
    return f"{number.quantize(CENT):,}"


@register.filter
def signed_money(value: Any) -> str:
    """Money with its sign: '+1,234.50', '-3.00', '0.00'."""
    number = _decimal(value)
    if number is None:
        return "\u2013"
    text = f"{number.quantize(CENT):,}"
    return f"+{text}" if number > 0 else text


@register.filter
def qty(value: Any) -> str:
    """A quantity without trailing zeros: Decimal('10.00000000') -> '10'."""
    number = _decimal(value)
    if number is None:
        return "\u2013"
    if number == number.to_integral_value():
        return f"{number.quantize(Decimal(1)):,}"
    return f"{number.normalize():,f}"


@register.filter
def price(value: Any) -> str:
    """A price with at least 2 and at most 4 decimals."""
    number = _decimal(value)
    if number is None:
        return "\u2013"
    four = number.quantize(Decimal("0.0001"))
    return f"{four.quantize(CENT):,}" if four == four.quantize(CENT) else f"{four:,}"


@register.filter
def pct(value: Any) -> str:
    """A percentage (already in %) with 2 decimals: '12.34%'."""
    number = _decimal(value)
    if number is None:
        return "\u2013"
    return f"{number.quantize(CENT):,}%"


@register.filter
def ratio(value: Any) -> str:
    number = _decimal(value)
    if number is None:
        return "n/a"
    return f"{number.quantize(Decimal('0.001')):,}"


@register.filter
def sign(value: Any) -> str:
    """The CSS class of a signed number: 'pos', 'neg' or ''."""
    number = _decimal(value)
    if number is None or number == 0:
        return ""
    return "pos" if number > 0 else "neg"


@register.filter
def percent_of_one(value: Any) -> int:
    """A 0..1 progress as a whole percentage."""
    number = _decimal(value)
    if number is None:
        return 0
    return int(max(Decimal(0), min(Decimal(1), number)) * 100)


@register.filter
def pretty_json(value: Any) -> str:
    """Stored JSON (a config) indented, keys in their stored order."""
    return json.dumps(value, indent=2, default=str)
