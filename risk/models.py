"""Risk app models: limits, their two-person changes, the kill switch and its audit trail.

Limits are never edited in place by a user: a ``RiskLimitChange`` is requested, approved by a
different user, and only then applied (a new active ``RiskLimitSet`` row, or the strategy's
``StrategyRiskLimit`` row). The kill switch state is one row per scope ("global", created by a
migration, or a strategy); every activation, deactivation and refused deactivation is an
append-only ``KillSwitchEvent``. The admin code is stored only as a password hash.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from quant.risk.limits import (
    PLATFORM_FIELDS,
    STRATEGY_FIELDS,
    LimitField,
    RiskLimits,
    StrategyLimits,
)

PLATFORM = RiskLimits()
STRATEGY = StrategyLimits()


def _pct(default: Decimal, help_text: str) -> Any:
    return models.DecimalField(max_digits=7, decimal_places=4, default=default, help_text=help_text)


def _money(default: Decimal, help_text: str) -> Any:
    return models.DecimalField(
        max_digits=18, decimal_places=4, default=default, help_text=help_text
    )


def _limit_checks(prefix: str, specs: dict[str, LimitField]) -> list[models.CheckConstraint]:
    """The database form of ``quant.risk.limits.limit_value``: one named check per limit."""
    conditions = {
        "pct": lambda f: Q(**{f"{f}__gt": 0, f"{f}__lte": 100}),
        "positive": lambda f: Q(**{f"{f}__gt": 0}),
        "non_negative": lambda f: Q(**{f"{f}__gte": 0}),
        "count": lambda f: Q(**{f"{f}__gte": 1}),
    }
    return [
        models.CheckConstraint(condition=conditions[spec.kind](name), name=f"{prefix}_{name}_valid")
        for name, spec in specs.items()
    ]


class RiskLimitSet(models.Model):
    """The platform limits. Exactly one row is active; an approved change stores a new one."""

    max_risk_per_trade_pct = _pct(PLATFORM.max_risk_per_trade_pct, "% of equity at risk")
    max_notional_per_trade = _money(PLATFORM.max_notional_per_trade, "Dollars per order")
    max_price_deviation_pct = _pct(PLATFORM.max_price_deviation_pct, "% from the last price")
    min_price = _money(PLATFORM.min_price, "Penny-stock filter, dollars")
    max_adv_pct = _pct(PLATFORM.max_adv_pct, "% of average daily volume per order")
    default_stop_pct = _pct(PLATFORM.default_stop_pct, "Stop assumed when an order names none")
    max_daily_drawdown_pct = _pct(PLATFORM.max_daily_drawdown_pct, "Halts new entries")
    max_total_drawdown_pct = _pct(PLATFORM.max_total_drawdown_pct, "Activates the kill switch")
    max_capital_deployed_pct = _pct(PLATFORM.max_capital_deployed_pct, "% of equity")
    max_open_positions = models.PositiveIntegerField(default=PLATFORM.max_open_positions)
    is_active = models.BooleanField(default=True)
    change = models.ForeignKey(
        "RiskLimitChange", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "platform risk limits"
        verbose_name_plural = "platform risk limits"
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="risklimitset_one_active"
            ),
            *_limit_checks("risklimitset", PLATFORM_FIELDS),
        ]

    def __str__(self) -> str:
        return f"Platform limits #{self.pk}{' (active)' if self.is_active else ''}"

    def as_limits(self) -> RiskLimits:
        return RiskLimits(**{name: getattr(self, name) for name in PLATFORM_FIELDS})


class StrategyRiskLimit(models.Model):
    """One strategy's limits; a strategy without a row trades under the defaults."""

    strategy = models.ForeignKey(
        "quant.Strategy", on_delete=models.CASCADE, related_name="risk_limits"
    )
    max_allocation_pct = _pct(STRATEGY.max_allocation_pct, "% of portfolio equity")
    max_drawdown_pct = _pct(STRATEGY.max_drawdown_pct, "% of its allocation; pauses it")
    max_daily_loss_pct = _pct(STRATEGY.max_daily_loss_pct, "% of its allocation; pauses it")
    min_liquidity = _money(STRATEGY.min_liquidity, "Average daily dollar volume")
    change = models.ForeignKey(
        "RiskLimitChange", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["strategy__name"]
        constraints = [
            models.UniqueConstraint(fields=["strategy"], name="strategyrisklimit_unique_strategy"),
            *_limit_checks("strategyrisklimit", STRATEGY_FIELDS),
        ]

    def __str__(self) -> str:
        return f"Limits of {self.strategy}"

    def as_limits(self) -> StrategyLimits:
        return StrategyLimits(**{name: getattr(self, name) for name in STRATEGY_FIELDS})


class ChangeScope(models.TextChoices):
    PLATFORM = "platform", "Platform"
    STRATEGY = "strategy", "Strategy"


class ChangeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Superseded"


class RiskLimitChange(models.Model):
    """A requested change of limits; applied only when a different user approves it."""

    scope = models.CharField(max_length=10, choices=ChangeScope.choices)
    strategy = models.ForeignKey(
        "quant.Strategy", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    values = models.JSONField(help_text="The proposed values by limit name")
    previous_values = models.JSONField(default=dict, help_text="The values when requested")
    reason = models.TextField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=ChangeStatus.choices, default=ChangeStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope__in=ChangeScope.values), name="risklimitchange_scope_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ChangeStatus.values), name="risklimitchange_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(scope=ChangeScope.PLATFORM, strategy__isnull=True)
                | Q(scope=ChangeScope.STRATEGY, strategy__isnull=False),
                name="risklimitchange_strategy_iff_scope",
            ),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="risklimitchange_two_persons",
            ),
            models.CheckConstraint(
                condition=Q(status=ChangeStatus.PENDING, decided_at__isnull=True)
                | (~Q(status=ChangeStatus.PENDING) & Q(decided_at__isnull=False)),
                name="risklimitchange_decided_at",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[ChangeStatus.APPROVED, ChangeStatus.REJECTED])
                | Q(decided_by__isnull=False),
                name="risklimitchange_decided_by",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="risklimitchange_has_reason"),
            models.UniqueConstraint(
                fields=["scope"],
                condition=Q(status=ChangeStatus.PENDING, scope=ChangeScope.PLATFORM),
                name="risklimitchange_one_pending_platform",
            ),
            models.UniqueConstraint(
                fields=["strategy"],
                condition=Q(status=ChangeStatus.PENDING, strategy__isnull=False),
                name="risklimitchange_one_pending_strategy",
            ),
        ]

    def __str__(self) -> str:
        target = self.strategy if self.scope == ChangeScope.STRATEGY else "platform"
        return f"Change #{self.pk} of {target} limits [{self.status}]"


GLOBAL = "global"


class KillSwitchScope(models.TextChoices):
    GLOBAL = GLOBAL, "Global"
    STRATEGY = "strategy", "Strategy"


class KillSwitchMode(models.TextChoices):
    FREEZE = "freeze", "Freeze (keep positions)"
    FLATTEN = "flatten", "Flatten (close positions)"


class KillSwitchSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    AUTO = "auto", "Automatic"


class KillSwitchState(models.Model):
    """The persisted kill switch of one scope; read before every order and strategy tick."""

    scope = models.CharField(max_length=10, choices=KillSwitchScope.choices)
    strategy = models.ForeignKey(
        "quant.Strategy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="kill_switches",
    )
    active = models.BooleanField(default=False)
    mode = models.CharField(
        max_length=8, choices=KillSwitchMode.choices, default=KillSwitchMode.FREEZE
    )
    reason = models.TextField(blank=True)
    source = models.CharField(
        max_length=8, choices=KillSwitchSource.choices, default=KillSwitchSource.MANUAL
    )
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    deactivated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    deactivated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "strategy__name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope__in=KillSwitchScope.values), name="killswitch_scope_valid"
            ),
            models.CheckConstraint(
                condition=Q(mode__in=KillSwitchMode.values), name="killswitch_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(source__in=KillSwitchSource.values), name="killswitch_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(scope=GLOBAL, strategy__isnull=True)
                | Q(scope=KillSwitchScope.STRATEGY, strategy__isnull=False),
                name="killswitch_strategy_iff_scope",
            ),
            models.CheckConstraint(
                condition=Q(active=False) | (Q(activated_at__isnull=False) & ~Q(reason="")),
                name="killswitch_active_has_reason",
            ),
            models.UniqueConstraint(
                fields=["scope"], condition=Q(scope=GLOBAL), name="killswitch_one_global"
            ),
            models.UniqueConstraint(fields=["strategy"], name="killswitch_one_per_strategy"),
        ]

    def __str__(self) -> str:
        return f"Kill switch ({self.label}): {'ACTIVE' if self.active else 'inactive'}"

    @property
    def label(self) -> str:
        """The scope as shown: 'global' or 'strategy <name>'."""
        return GLOBAL if self.scope == GLOBAL else f"strategy {self.strategy}"


class KillSwitchAction(models.TextChoices):
    ACTIVATED = "activated", "Activated"
    DEACTIVATED = "deactivated", "Deactivated"
    DEACTIVATION_REFUSED = "deactivation_refused", "Deactivation refused"


class KillSwitchEvent(models.Model):
    """Append-only audit of the kill switch: who did what, when and why."""

    scope = models.CharField(max_length=10, choices=KillSwitchScope.choices)
    strategy = models.ForeignKey(
        "quant.Strategy", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=24, choices=KillSwitchAction.choices)
    mode = models.CharField(max_length=8, choices=KillSwitchMode.choices, blank=True)
    source = models.CharField(max_length=8, choices=KillSwitchSource.choices)
    reason = models.TextField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=KillSwitchAction.values), name="killswitchevent_action_valid"
            ),
            models.CheckConstraint(
                condition=Q(scope=GLOBAL, strategy__isnull=True)
                | Q(scope=KillSwitchScope.STRATEGY, strategy__isnull=False),
                name="killswitchevent_strategy_iff_scope",
            ),
        ]
        indexes = [models.Index(fields=["scope", "strategy", "-created_at"], name="ks_event_scope")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.scope}) at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("kill switch events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("kill switch events are append-only")


class AdminCode(models.Model):
    """The kill switch's admin code, as a password hash only; the newest row is the code."""

    code_hash = models.CharField(max_length=256)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # make_password() output is "<algorithm>$<...>$<hash>"; a bare code has no algorithm
            models.CheckConstraint(
                condition=Q(code_hash__regex=r"^[a-z0-9_]+\$.+\$"), name="admincode_is_a_hash"
            ),
        ]

    def __str__(self) -> str:
        return f"Admin code set {self.created_at:%Y-%m-%d %H:%M}"
