"""The order state machine: one table, one function (spec section 5, plus partial fills and expiry).

Every status change of an ``Order`` goes through ``transition``; the order service applies the
result with a compare-and-swap UPDATE and an ``OrderEvent`` row in one transaction. A pair that
is not in the table raises ``InvalidTransition``: the caller logs it, raises an alert and leaves
the order as it is (reconciliation sorts it out).
"""

from __future__ import annotations

import enum


class OrderStatus(enum.StrEnum):
    PENDING = "pending"  # created; awaiting the risk check or the broker's acknowledgement
    SUBMITTED = "submitted"  # acknowledged by the broker, nothing filled yet
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"  # by the risk gateway or by the broker
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self not in OPEN_STATUSES


# A tuple, not a set: migrations render the open-orders index condition in this order.
OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED)


class OrderEventType(enum.StrEnum):
    RISK_REJECT = "risk_reject"  # the gateway refused the order; it never reached a broker
    SUBMIT_ACK = "submit_ack"  # the broker holds the order
    BROKER_REJECT = "broker_reject"
    PARTIAL_FILL = "partial_fill"  # filled quantity grew, some is left
    FILL = "fill"  # filled quantity reached the order quantity
    CANCEL = "cancel"  # cancelled: by the broker's confirmation, or before it was ever sent
    EXPIRE = "expire"


S, E = OrderStatus, OrderEventType

TRANSITIONS: dict[tuple[OrderStatus, OrderEventType], OrderStatus] = {
    (S.PENDING, E.RISK_REJECT): S.REJECTED,
    (S.PENDING, E.SUBMIT_ACK): S.SUBMITTED,
    (S.PENDING, E.BROKER_REJECT): S.REJECTED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    # The acknowledgement was lost (timeout) but the lookup by client_order_id shows fills:
    (S.PENDING, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PENDING, E.FILL): S.FILLED,
    (S.PENDING, E.EXPIRE): S.EXPIRED,
    (S.SUBMITTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.SUBMITTED, E.FILL): S.FILLED,
    (S.SUBMITTED, E.BROKER_REJECT): S.REJECTED,
    (S.SUBMITTED, E.CANCEL): S.CANCELLED,
    (S.SUBMITTED, E.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    # The rest of a partly filled order is cancelled or expires; the filled part stays.
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
}


class InvalidTransition(Exception):
    def __init__(self, status: OrderStatus, event: OrderEventType) -> None:
        super().__init__(f"order in status {status.value!r} cannot take event {event.value!r}")
        self.status = status
        self.event = event


def transition(status: OrderStatus | str, event: OrderEventType | str) -> OrderStatus:
    """The status after ``event``; raises ``InvalidTransition`` for a pair not in the table."""
    status, event = OrderStatus(status), OrderEventType(event)
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None
