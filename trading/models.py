"""Orders, their append-only events, fills, positions, account snapshots and the trading state.

Invariants live in the database: quantity > 0, filled <= quantity, limit orders carry a limit
price, one ``client_order_id`` per order, one fill per (order, broker fill id), one position
per (strategy, mode, symbol). Status changes go through ``trading.services`` only (compare-and-
swap UPDATE plus an ``OrderEvent`` in the same transaction).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, Q

from quant.orders.fsm import OPEN_STATUSES, OrderEventType, OrderStatus


def _decimal(**options: Any) -> Any:
    """Quantities, prices and money: exact decimals with 8 places (fractional shares)."""
    return models.DecimalField(max_digits=24, decimal_places=8, **options)


class TradingMode(models.TextChoices):
    PAPER = "paper", "Paper"
    LIVE = "live", "Live"


class OrderSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderKind(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP = "stop", "Stop"


class OrderSource(models.TextChoices):
    STRATEGY = "strategy", "Strategy"
    MANUAL = "manual", "Manual"
    KILL_SWITCH = "kill_switch", "Kill switch (flatten)"
    OPERATOR = "operator", "Operator (flatten position)"


class Order(models.Model):
    strategy = models.ForeignKey("quant.Strategy", on_delete=models.PROTECT, related_name="orders")
    mode = models.CharField(max_length=8, choices=TradingMode.choices)
    broker = models.CharField(max_length=32, help_text="Adapter name, e.g. simulated or alpaca")
    client_order_id = models.CharField(max_length=128)
    broker_order_id = models.CharField(max_length=128, blank=True, default="")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    order_type = models.CharField(max_length=8, choices=OrderKind.choices, default="market")
    time_in_force = models.CharField(max_length=8, default="day")
    quantity = _decimal()
    limit_price = _decimal(null=True, blank=True)
    stop_price = _decimal(null=True, blank=True)
    stop_distance = _decimal(
        null=True, blank=True, help_text="Price distance to the protective stop (risk)"
    )
    opening = models.BooleanField(help_text="True when the order grows the absolute position")
    source = models.CharField(max_length=16, choices=OrderSource.choices)
    reason = models.CharField(max_length=200, blank=True, help_text="Why it was placed")
    status = models.CharField(
        max_length=20, choices=[(s.value, s.value) for s in OrderStatus], default="pending"
    )
    filled_quantity = _decimal(default=0)
    avg_fill_price = _decimal(null=True, blank=True)
    commission = _decimal(default=0)
    reject_reason = models.TextField(blank=True)
    reference_price = _decimal(null=True, blank=True, help_text="Last price the risk check used")
    submit_started_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the gateway approved it, before the broker call"
    )
    submit_attempts = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField(null=True, blank=True)
    broker_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="Time of the newest broker report applied"
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(
        max_length=120, blank=True, default="", help_text="The client's Idempotency-Key (per user)"
    )
    idempotency_fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["client_order_id"], name="order_unique_client_id"),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="order_unique_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["broker", "broker_order_id"],
                condition=~Q(broker_order_id=""),
                name="order_unique_broker_id",
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=F("quantity")),
                name="order_filled_within_quantity",
            ),
            models.CheckConstraint(
                condition=~Q(order_type="limit") | Q(limit_price__isnull=False),
                name="order_limit_has_price",
            ),
            models.CheckConstraint(
                condition=~Q(order_type="stop") | Q(stop_price__isnull=False),
                name="order_stop_has_price",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in OrderStatus]), name="order_status_valid"
            ),
            models.CheckConstraint(condition=Q(side__in=OrderSide.values), name="order_side_valid"),
            models.CheckConstraint(
                condition=Q(mode__in=TradingMode.values), name="order_mode_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["mode", "status"],
                condition=Q(status__in=[s.value for s in OPEN_STATUSES]),
                name="order_open",
            ),
            models.Index(fields=["strategy", "-created_at"], name="order_strategy_recent"),
            models.Index(fields=["mode", "-created_at", "-id"], name="order_mode_recent"),
            models.Index(fields=["symbol", "-created_at"], name="order_symbol_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} [{self.status}] {self.client_order_id}"

    @property
    def remaining(self) -> Any:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return OrderStatus(self.status).is_open


class AppendOnly(models.Model):
    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)


class OrderEvent(AppendOnly):
    """One change of an order (or a note about it: a stale report, a cancel request)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    event = models.CharField(max_length=32)
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["order", "id"]
        indexes = [models.Index(fields=["order", "id"], name="orderevent_order")]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status} -{self.event}-> {self.to_status}"


NOTE_EVENTS = ("created", "submit_started", "cancel_requested", "stale_report", "note")
assert not set(NOTE_EVENTS) & {e.value for e in OrderEventType}


class Fill(AppendOnly):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    broker_fill_id = models.CharField(max_length=160)
    strategy = models.ForeignKey("quant.Strategy", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=8, choices=TradingMode.choices)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    quantity = _decimal()
    price = _decimal()
    commission = _decimal(default=0)
    closed_quantity = _decimal(
        default=0, help_text="Part of the quantity that reduced an open position"
    )
    realized_pnl = _decimal(
        default=0, help_text="Realized P&L of this fill: the closed part, less its commission"
    )
    ts = models.DateTimeField()

    class Meta:
        ordering = ["ts", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "broker_fill_id"], name="fill_unique_id"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="fill_price_positive"),
        ]
        indexes = [
            models.Index(fields=["strategy", "mode", "symbol"], name="fill_position"),
            models.Index(fields=["mode", "ts"], name="fill_mode_time"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price}"


class Position(models.Model):
    """The sum of a strategy's fills in one symbol, kept in the fill's transaction."""

    strategy = models.ForeignKey(
        "quant.Strategy", on_delete=models.PROTECT, related_name="positions"
    )
    mode = models.CharField(max_length=8, choices=TradingMode.choices)
    symbol = models.CharField(max_length=32)
    quantity = _decimal(default=0)
    avg_price = _decimal(default=0)
    realized_pnl = _decimal(default=0)
    last_fill_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["strategy", "symbol"]
        constraints = [
            models.UniqueConstraint(
                fields=["strategy", "mode", "symbol"], name="position_unique_symbol"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy_id}/{self.mode} {self.symbol} {self.quantity}"


class AccountSnapshot(models.Model):
    mode = models.CharField(max_length=8, choices=TradingMode.choices)
    broker = models.CharField(max_length=32)
    equity = _decimal()
    cash = _decimal()
    buying_power = _decimal()
    ts = models.DateTimeField()

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["mode", "-ts"], name="account_recent")]

    def __str__(self) -> str:
        return f"{self.mode} equity {self.equity} at {self.ts:%Y-%m-%d %H:%M}"


class SafeMode(models.Model):
    """No new entries for a trading mode while reconciliation disagrees with the broker."""

    mode = models.CharField(max_length=8, choices=TradingMode.choices, unique=True)
    active = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"safe mode {self.mode}: {'on' if self.active else 'off'}"


class ReconciliationRun(models.Model):
    mode = models.CharField(max_length=8, choices=TradingMode.choices)
    broker = models.CharField(max_length=32)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    matched = models.BooleanField(default=False)
    discrepancies = models.JSONField(default=list, blank=True)
    repaired = models.JSONField(default=list, blank=True, help_text="Orders brought up to date")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        verdict = "matched" if self.matched else "MISMATCH"
        return f"reconciliation {self.mode} {self.started_at:%Y-%m-%d %H:%M:%S} {verdict}"


class StrategyRuntime(models.Model):
    """Where the trading loop stands with one strategy in one mode."""

    strategy = models.ForeignKey("quant.Strategy", on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=8, choices=TradingMode.choices)
    last_bar_ts = models.DateTimeField(null=True, blank=True)
    last_tick_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    paused_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when a strategy limit paused it; cleared when lifted"
    )
    paused_until = models.DateTimeField(
        null=True, blank=True, help_text="End of a session pause; empty: until an operator lifts it"
    )
    paused_check = models.CharField(max_length=32, blank=True, help_text="The limit breached")
    paused_reason = models.TextField(blank=True, help_text="The gateway's reason, verbatim")
    high_water_mark = _decimal(null=True, blank=True)
    session_date = models.DateField(null=True, blank=True)
    session_start_equity = _decimal(null=True, blank=True)
    last_daily_close = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["strategy", "mode"], name="runtime_unique_strategy")
        ]

    def __str__(self) -> str:
        return f"runtime {self.strategy_id}/{self.mode}"


class PauseAction(models.TextChoices):
    PAUSED = "paused", "Paused"
    LIFTED = "lifted", "Lifted"


class StrategyPauseEvent(AppendOnly):
    """Audit of strategy pauses: each pause a breached limit stored, each lift by an operator."""

    strategy = models.ForeignKey("quant.Strategy", on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=8, choices=TradingMode.choices)
    action = models.CharField(max_length=8, choices=PauseAction.choices)
    limit = models.CharField(max_length=32, blank=True, help_text="The limit breached")
    reason = models.TextField(blank=True)
    until = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=PauseAction.values), name="pauseevent_action_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.strategy_id}/{self.mode} {self.action} {self.at:%Y-%m-%d %H:%M}"
