"""The simulated venue's book: accounts, the orders it works, their fills, its positions.

This is the *venue's* side (what a broker would hold), not the platform's ``trading.Order``.
Times are venue times from the injected clock. Invariants live in the database: one
``client_order_id`` per account, filled <= quantity, limit and stop orders carry their price,
one position per (account, symbol).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import F, Q


def _decimal(**options: Any) -> Any:
    """Quantities, prices and money: exact decimals with 8 places (as ``trading.models``)."""
    return models.DecimalField(max_digits=24, decimal_places=8, **options)


def _new_broker_order_id() -> str:
    return str(uuid.uuid4())


class VenueOrderSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class VenueOrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP = "stop", "Stop"


class VenueOrderStatus(models.TextChoices):
    NEW = "new", "New"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


OPEN_VENUE_STATUSES = (VenueOrderStatus.NEW, VenueOrderStatus.PARTIALLY_FILLED)


class VenueAccount(models.Model):
    """One paper account. Its row is the venue's lock: every change happens under
    ``select_for_update`` on it, so two processes never work the same orders twice."""

    name = models.CharField(max_length=64, unique=True)
    cash = _decimal()
    starting_cash = _decimal()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(starting_cash__gt=0), name="venueaccount_starting_cash_positive"
            )
        ]

    def __str__(self) -> str:
        return self.name


class VenueOrder(models.Model):
    account = models.ForeignKey(VenueAccount, on_delete=models.CASCADE, related_name="orders")
    broker_order_id = models.CharField(max_length=36, unique=True, default=_new_broker_order_id)
    client_order_id = models.CharField(max_length=128)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=VenueOrderSide.choices)
    order_type = models.CharField(max_length=8, choices=VenueOrderType.choices)
    time_in_force = models.CharField(max_length=8, default="day")
    quantity = _decimal()
    limit_price = _decimal(null=True, blank=True)
    stop_price = _decimal(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=VenueOrderStatus.choices, default=VenueOrderStatus.NEW
    )
    filled_qty = _decimal(default=Decimal("0"))
    filled_avg_price = _decimal(null=True, blank=True)
    commission = _decimal(default=Decimal("0"))
    reject_reason = models.TextField(blank=True)
    triggered = models.BooleanField(
        default=False, help_text="A stop that has fired works as a market order"
    )
    created_at = models.DateTimeField(help_text="Venue time the order arrived")
    updated_at = models.DateTimeField(help_text="Venue time of the last change")
    accept_at = models.DateTimeField(help_text="Arrival plus the venue's latency")
    placed_bar_ts = models.DateTimeField(
        null=True, blank=True, help_text="Start of the latest finished bar when it was accepted"
    )
    worked_bar_ts = models.DateTimeField(
        null=True, blank=True, help_text="Start of the last bar the order was worked against"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"], name="venueorder_unique_client_id"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="venueorder_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(filled_qty__gte=0) & Q(filled_qty__lte=F("quantity")),
                name="venueorder_filled_within_quantity",
            ),
            models.CheckConstraint(
                condition=~Q(order_type="limit") | Q(limit_price__isnull=False),
                name="venueorder_limit_has_price",
            ),
            models.CheckConstraint(
                condition=~Q(order_type="stop") | Q(stop_price__isnull=False),
                name="venueorder_stop_has_price",
            ),
            models.CheckConstraint(
                condition=Q(status__in=VenueOrderStatus.values), name="venueorder_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(side__in=VenueOrderSide.values), name="venueorder_side_valid"
            ),
            models.CheckConstraint(
                condition=Q(order_type__in=VenueOrderType.values), name="venueorder_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(commission__gte=0), name="venueorder_commission_non_negative"
            ),
        ]
        indexes = [
            models.Index(
                fields=["account", "created_at"],
                condition=Q(status__in=["new", "partially_filled"]),
                name="venueorder_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} [{self.status}] {self.client_order_id}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_VENUE_STATUSES


class VenueFill(models.Model):
    order = models.ForeignKey(VenueOrder, on_delete=models.CASCADE, related_name="fills")
    quantity = _decimal()
    price = _decimal()
    commission = _decimal()
    ts = models.DateTimeField(help_text="Venue time of the fill")

    class Meta:
        ordering = ["ts", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="venuefill_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="venuefill_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} @ {self.price} ({self.order_id})"


class VenuePosition(models.Model):
    account = models.ForeignKey(VenueAccount, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=32)
    quantity = _decimal(help_text="Signed: > 0 long, < 0 short")
    avg_price = _decimal()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["account", "symbol"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "symbol"], name="venueposition_unique_account_symbol"
            )
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.quantity} @ {self.avg_price}"
