"""Alpaca through alpaca-py's ``TradingClient``, behind the async ``BrokerClient`` interface.

The SDK is blocking: every call runs in a worker thread (``asyncio.to_thread``). Its own retry
loop is off: the order service owns retries, and must look an order up by client_order_id
before resending it. Every HTTP request waits for the "alpaca" rate limiter, the one budget
(200/min per account) the market-data provider draws on too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import requests
from alpaca.common.enums import BaseURL, Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, PositionSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from django.conf import settings

from common.ratelimit import LocalRateLimiter, RateLimiter
from marketdata.providers import _limiter  # one "alpaca" budget per account, shared
from marketdata.providers.http import LimitedAdapter, retry_after_seconds
from quant.errors import ConfigurationError
from trading.brokers.base import (
    BrokerAccount,
    BrokerCapabilities,
    BrokerClient,
    BrokerError,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerPosition,
    FinalBrokerError,
    OrderNotFoundError,
    OrderTicket,
    RetryableBrokerError,
)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429})  # and every 5xx
PAGE_SIZE = 500  # Alpaca's largest page of orders

# Alpaca's order statuses. ``None``: the order is still alive at Alpaca and its filled
# quantity decides between NEW, PARTIALLY_FILLED and FILLED.
STATUSES: dict[OrderStatus, BrokerOrderStatus | None] = {
    OrderStatus.NEW: BrokerOrderStatus.NEW,
    OrderStatus.ACCEPTED: BrokerOrderStatus.NEW,  # taken by Alpaca, not routed yet (market closed)
    OrderStatus.PENDING_NEW: BrokerOrderStatus.NEW,  # routed, the venue has not acknowledged it
    OrderStatus.ACCEPTED_FOR_BIDDING: BrokerOrderStatus.NEW,  # waiting in an auction book
    OrderStatus.PENDING_REVIEW: BrokerOrderStatus.NEW,  # compliance review before routing
    OrderStatus.HELD: BrokerOrderStatus.NEW,  # a bracket/OTO leg waiting for its parent's fill
    OrderStatus.PARTIALLY_FILLED: BrokerOrderStatus.PARTIALLY_FILLED,
    OrderStatus.FILLED: BrokerOrderStatus.FILLED,
    OrderStatus.CANCELED: BrokerOrderStatus.CANCELLED,  # may carry a partial fill: see filled qty
    OrderStatus.EXPIRED: BrokerOrderStatus.EXPIRED,
    OrderStatus.REJECTED: BrokerOrderStatus.REJECTED,
    # Replaced by another order (``replaced_by``): this one gets no more fills, so it is over.
    OrderStatus.REPLACED: BrokerOrderStatus.CANCELLED,
    # A cancel or replace was asked for but not confirmed: fills can still arrive, so the
    # order stays open until Alpaca says canceled/replaced.
    OrderStatus.PENDING_CANCEL: None,
    OrderStatus.PENDING_REPLACE: None,
    # No more fills today, but not over: a GTC order works again tomorrow, a day order is
    # reported canceled or expired later.
    OrderStatus.DONE_FOR_DAY: None,
    OrderStatus.CALCULATED: None,  # done for the day, settlement calculations pending
    OrderStatus.STOPPED: None,  # a trade at a guaranteed price is promised, not yet done
    OrderStatus.SUSPENDED: None,  # not eligible for trading for now: it may resume, keep watching
}
REJECTED_REASON = "rejected by Alpaca (its order report gives no reason)"


class AlpacaBroker(BrokerClient):
    """Alpaca paper or live trading (``paper=False``) through alpaca-py."""

    name = "alpaca"
    capabilities = BrokerCapabilities(
        order_types=frozenset({"market", "limit", "stop", "stop_limit"}),
        supports_short=True,
        fractional=True,
    )

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        paper: bool = True,
        url_override: str = "",
        rate_limiter: RateLimiter | None = None,
        timeout: float = 10.0,
    ) -> None:
        missing = [n for n, v in (("api_key", api_key), ("secret_key", secret_key)) if not v]
        if missing:
            raise ConfigurationError(
                "Alpaca trading needs ALPACA_API_KEY and ALPACA_SECRET_KEY",
                details={"missing": missing},
            )
        self.paper = paper
        self.client = TradingClient(
            api_key, secret_key, paper=paper, url_override=url_override or None
        )
        # alpaca-py retries 429/504 itself (3 times 3 s, Retry-After ignored); a resent order
        # must be looked up first, which only the order service can do: no SDK retries.
        self.client._retry = 0
        adapter = LimitedAdapter(rate_limiter or LocalRateLimiter(200), timeout)
        self.client._session.mount("http://", adapter)
        self.client._session.mount("https://", adapter)

    # -- BrokerClient ---------------------------------------------------------------------

    async def place_order(self, ticket: OrderTicket) -> BrokerOrder:
        request = order_request(ticket)
        return await self._call(lambda: broker_order(self.client.submit_order(request)))

    async def cancel_order(self, broker_order_id: str) -> bool:
        order_id = _order_uuid(broker_order_id)
        try:
            await self._call(lambda: self.client.cancel_order_by_id(order_id))
        except FinalBrokerError as error:
            if error.details.get("status") == 422:  # "order is not cancelable": it is done
                return False
            raise
        return True

    async def get_order_status(self, broker_order_id: str) -> BrokerOrder:
        order_id = _order_uuid(broker_order_id)
        return await self._call(lambda: broker_order(self.client.get_order_by_id(order_id)))

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        try:
            return await self._call(
                lambda: broker_order(self.client.get_order_by_client_id(client_order_id))
            )
        except OrderNotFoundError:
            return None

    async def list_open_orders(self) -> list[BrokerOrder]:
        return await self._call(self._open_orders)

    async def get_positions(self) -> list[BrokerPosition]:
        return await self._call(
            lambda: [broker_position(p) for p in _as_list(self.client.get_all_positions())]
        )

    async def get_account(self) -> BrokerAccount:
        return await self._call(lambda: broker_account(self.client.get_account()))

    async def close(self) -> None:
        self.client._session.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _open_orders(self) -> list[BrokerOrder]:
        """Every open order, newest first, paging back by submission time past 500.

        ``until`` is exclusive. After a page with new orders the next one starts a microsecond
        past its oldest time, so orders sharing that time are read again rather than skipped
        (repeats are dropped); a page with nothing new moves strictly past that time. Only
        more than 500 orders stamped with the same microsecond could hide some.
        """
        found: dict[str, BrokerOrder] = {}
        until = None
        while True:
            page = _as_list(
                self.client.get_orders(
                    GetOrdersRequest(
                        status=QueryOrderStatus.OPEN,
                        limit=PAGE_SIZE,
                        direction=Sort.DESC,
                        until=until,
                    )
                )
            )
            fresh = [o for o in page if str(o.id) not in found]
            found.update((str(o.id), broker_order(o)) for o in fresh)
            if len(page) < PAGE_SIZE:
                return list(found.values())
            oldest = min(o.submitted_at for o in page)
            until = oldest + timedelta(microseconds=1) if fresh else oldest

    async def _call(self, call: Callable[[], T]) -> T:
        return await asyncio.to_thread(_mapped, call)


def _mapped(call: Callable[[], T]) -> T:
    """Run one SDK call (and the conversion of its answer), mapping failures to ours."""
    try:
        return call()
    except APIError as error:
        raise api_error(error) from error
    except (requests.Timeout, requests.ConnectionError) as error:
        # The request may have reached Alpaca (an order may exist): look it up, then retry.
        raise RetryableBrokerError(f"Alpaca unreachable: {error}") from error
    except (requests.RequestException, ValueError, KeyError, TypeError, ArithmeticError) as error:
        # A 2xx that is not Alpaca's JSON (proxy page, truncated body, unknown field value).
        raise RetryableBrokerError(f"Alpaca sent an unreadable answer: {error!r}") from error


def api_error(error: APIError) -> BrokerError:
    """Alpaca's error status and ``{"code", "message"}`` body as one of our broker errors."""
    status = error.status_code
    response = error.response
    code, message = _error_body(str(error))
    details: dict[str, Any] = {"status": status, "alpaca_code": code, "alpaca_message": message}
    text = f"Alpaca answered {status}: {message}"
    if status == 404:
        return OrderNotFoundError(text, details=details)
    if status is None or status in RETRYABLE_STATUS or status >= 500:
        header = response.headers.get("Retry-After") if response is not None else None
        return RetryableBrokerError(text, retry_after=retry_after_seconds(header), details=details)
    return FinalBrokerError(text, details=details)


def _error_body(text: str) -> tuple[int | None, str]:
    try:
        body = json.loads(text)
        return body.get("code"), str(body["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, text.strip()[:200] or "no message"


# -- our values → alpaca-py requests ------------------------------------------------------


def order_request(ticket: OrderTicket) -> OrderRequest:
    """The SDK request for a ticket; a ticket Alpaca cannot take is a ``FinalBrokerError``."""
    fields: dict[str, Any] = {
        "symbol": ticket.symbol,
        "qty": _exact_float("quantity", ticket.quantity),
        "client_order_id": ticket.client_order_id,
    }
    try:
        fields["side"] = OrderSide(ticket.side)
        fields["time_in_force"] = TimeInForce(ticket.time_in_force)
        if ticket.order_type == "market":
            return MarketOrderRequest(**fields)
        if ticket.order_type == "limit":
            return LimitOrderRequest(**fields, limit_price=_price("limit", ticket.limit_price))
        if ticket.order_type == "stop":
            return StopOrderRequest(**fields, stop_price=_price("stop", ticket.stop_price))
        if ticket.order_type == "stop_limit":
            return StopLimitOrderRequest(
                **fields,
                limit_price=_price("limit", ticket.limit_price),
                stop_price=_price("stop", ticket.stop_price),
            )
    except ValueError as error:  # pydantic's validation and the SDK enums
        raise FinalBrokerError(f"Alpaca cannot take this order: {error}") from error
    raise FinalBrokerError(f"Alpaca cannot take {ticket.order_type!r} orders")


def _price(kind: str, value: Decimal | None) -> float:
    if value is None:
        raise FinalBrokerError(f"a {kind} price is required for this order type")
    return _exact_float(f"{kind} price", value)


def _exact_float(name: str, value: Decimal) -> float:
    """alpaca-py's request models hold floats, sent as their shortest repr: exact for the
    digits Alpaca accepts. A value with more digits than that is refused, never rounded."""
    number = float(value)
    if not value.is_finite() or Decimal(repr(number)) != value:
        raise FinalBrokerError(f"{name} {value} has more digits than Alpaca accepts")
    return number


# -- alpaca-py models → our values ---------------------------------------------------------


def broker_status(status: OrderStatus, quantity: Decimal, filled: Decimal) -> BrokerOrderStatus:
    mapped = STATUSES[status]
    if mapped is not None:
        return mapped
    if filled <= 0:
        return BrokerOrderStatus.NEW
    return BrokerOrderStatus.FILLED if filled >= quantity else BrokerOrderStatus.PARTIALLY_FILLED


def broker_order(order: Any) -> BrokerOrder:
    if not isinstance(order, Order):
        raise TypeError(f"expected an order, got {type(order).__name__}")
    quantity = _decimal(order.qty)
    filled = _decimal(order.filled_qty or 0)
    status = broker_status(order.status, quantity, filled)
    kind = order.type or order.order_type
    return BrokerOrder(
        broker_order_id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=order.side.value if order.side else "",
        quantity=quantity,
        status=status,
        filled_quantity=filled,
        filled_avg_price=_decimal(order.filled_avg_price) if filled else None,
        order_type=kind.value if kind else "",
        limit_price=_optional_decimal(order.limit_price),
        stop_price=_optional_decimal(order.stop_price),
        submitted_at=order.submitted_at,
        updated_at=order.updated_at,
        reject_reason=REJECTED_REASON if status is BrokerOrderStatus.REJECTED else "",
    )


def broker_position(position: Position) -> BrokerPosition:
    quantity = abs(_decimal(position.qty))  # Alpaca signs short quantities; trust the side
    return BrokerPosition(
        symbol=position.symbol,
        quantity=-quantity if position.side == PositionSide.SHORT else quantity,
        avg_entry_price=_decimal(position.avg_entry_price),
        market_value=_optional_decimal(position.market_value),
    )


def broker_account(account: Any) -> BrokerAccount:
    if not isinstance(account, TradeAccount):
        raise TypeError(f"expected an account, got {type(account).__name__}")
    return BrokerAccount(
        account_id=str(account.id),
        equity=_decimal(account.equity),
        cash=_decimal(account.cash),
        buying_power=_decimal(account.buying_power),
        status=account.status.value,
        trading_blocked=bool(
            account.trading_blocked or account.account_blocked or account.trade_suspended_by_user
        ),
        currency=account.currency or "USD",
    )


def _decimal(value: str | float | int | None) -> Decimal:
    if value is None:
        raise ValueError("a required number is missing from Alpaca's answer")
    return Decimal(str(value))  # str first: a float the SDK parsed keeps its shortest digits


def _optional_decimal(value: str | float | None) -> Decimal | None:
    return None if value is None else _decimal(value)


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _order_uuid(broker_order_id: str) -> UUID:
    """Alpaca's order ids are UUIDs; anything else cannot name an Alpaca order."""
    try:
        return UUID(broker_order_id)
    except (ValueError, TypeError, AttributeError):
        raise OrderNotFoundError(f"{broker_order_id!r} is not an Alpaca order id") from None


# -- settings ---------------------------------------------------------------------------------


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()


def alpaca_broker_from_settings(*, live: bool = False) -> AlpacaBroker:
    """The Alpaca broker of this deployment: paper unless ``live``, which also needs
    ``ALPACA_LIVE_TRADING_ENABLED``. Requests share the "alpaca" rate budget (Redis when
    ``REDIS_URL`` is set) with the market-data provider."""
    if live and not settings.ALPACA_LIVE_TRADING_ENABLED:
        raise ConfigurationError(
            "live trading on Alpaca is switched off: set ALPACA_LIVE_TRADING_ENABLED=true "
            "(and live keys in ALPACA_API_KEY/ALPACA_SECRET_KEY) to allow it"
        )
    missing = [n for n in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY") if not getattr(settings, n)]
    if missing:
        raise ConfigurationError(
            f"Alpaca trading needs {' and '.join(missing)}: set them in the environment",
            details={"missing": missing},
        )
    if not live and _host(settings.ALPACA_BASE_URL) == _host(BaseURL.TRADING_LIVE.value):
        raise ConfigurationError(
            "ALPACA_BASE_URL points at Alpaca's live endpoint but paper trading was asked for: "
            "live orders go through the live broker and its gate only"
        )
    return AlpacaBroker(
        api_key=settings.ALPACA_API_KEY,
        secret_key=settings.ALPACA_SECRET_KEY,
        paper=not live,
        url_override=settings.ALPACA_BASE_URL,
        rate_limiter=_limiter("alpaca", settings.ALPACA_RATE_LIMIT_PER_MINUTE),
    )
