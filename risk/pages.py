"""Reads of the dashboard's settings page: limits, their pending changes, approvals,
notification channels."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from monitoring.models import AlertChannel
from monitoring.notifiers import ROUTES, configured_notifiers
from quant.risk.limits import PLATFORM_FIELDS, STRATEGY_FIELDS
from research.models import ApprovalRequest, ApprovalStatus
from risk.models import RiskLimitSet, StrategyRiskLimit
from risk.selectors import admin_code_is_set, limit_changes_pending, limits_current


def _help(model: type[Any], name: str) -> str:
    return str(model._meta.get_field(name).help_text)


def _label(name: str) -> str:
    return name.replace("_pct", " %").replace("_", " ").capitalize()


def limits() -> dict[str, Any]:
    current = limits_current().as_dict()
    return {
        "platform_limits": [
            {
                "name": n,
                "label": _label(n),
                "value": current[n],
                "kind": spec.kind,
                "help": _help(RiskLimitSet, n),
            }
            for n, spec in PLATFORM_FIELDS.items()
        ],
        "strategy_limit_fields": [_label(n) for n in STRATEGY_FIELDS],
        "strategy_limits": [
            {"strategy": row.strategy, "values": [getattr(row, n) for n in STRATEGY_FIELDS]}
            for row in StrategyRiskLimit.objects.select_related("strategy")
        ],
        "admin_code_set": admin_code_is_set(),
    }


def pending() -> dict[str, Any]:
    changes = []
    for change in limit_changes_pending().order_by("requested_at"):
        changes.append(
            {
                "change": change,
                "rows": [
                    {"name": n, "label": _label(n), "old": change.previous_values.get(n), "new": v}
                    for n, v in change.values.items()
                ],
            }
        )
    return {
        "limit_changes": changes,
        "approvals_pending": list(
            ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING)
            .select_related("strategy", "strategy_version", "requested_by")
            .order_by("requested_at")
        ),
    }


def _masked(recipient: str) -> str:
    if "@" in recipient:
        name, _, domain = recipient.partition("@")
        return f"{name[:2]}…@{domain}"
    if recipient.startswith("+") and len(recipient) > 6:
        return f"{recipient[:3]}…{recipient[-2:]}"
    return recipient


def channels() -> dict[str, Any]:
    notifiers = configured_notifiers()
    return {
        "channels": [
            {
                "name": name,
                "label": AlertChannel(name).label,
                "configured": bool(notifier.recipients()),
                "recipients": [_masked(r) for r in notifier.recipients()],
                "severities": [s for s, routed in ROUTES.items() if name in routed],
            }
            for name, notifier in notifiers.items()
        ],
        "group_window": settings.ALERT_GROUP_WINDOW_SECONDS,
    }
