"""AlpacaBroker (the real alpaca-py TradingClient inside) against the loopback trading server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from alpaca.common.enums import BaseURL
from alpaca.trading.enums import OrderStatus
from pytest_django.fixtures import Settings as SettingsWrapper

from common.ratelimit import RedisRateLimiter
from marketdata.providers import _limiter
from quant.errors import ConfigurationError
from tests.support.alpaca_trading import AlpacaTradingServer
from tests.support.fixtures import alpaca_broker
from trading.brokers import alpaca as alpaca_module
from trading.brokers.alpaca import STATUSES, AlpacaBroker, alpaca_broker_from_settings
from trading.brokers.base import (
    BrokerOrderStatus,
    FinalBrokerError,
    OrderNotFoundError,
    OrderTicket,
    RetryableBrokerError,
)

ORDERS = "/v2/orders"


def ticket(cid: str = "strat-1-20240102-a", **overrides: Any) -> OrderTicket:
    fields: dict[str, Any] = {
        "client_order_id": cid,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": Decimal("10"),
    }
    fields.update(overrides)
    return OrderTicket(**fields)


@pytest.fixture
def server(alpaca_trading_server: AlpacaTradingServer) -> AlpacaTradingServer:
    alpaca_trading_server.set_price("AAPL", "190.25")
    return alpaca_trading_server


@pytest.fixture
def broker(server: AlpacaTradingServer) -> AlpacaBroker:
    return alpaca_broker(server, timeout=0.3)


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_market_order_round_trip_is_decimal_exact(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    placed = await broker.place_order(ticket(quantity=Decimal("10")))

    assert placed.status is BrokerOrderStatus.FILLED
    assert placed.client_order_id == "strat-1-20240102-a" and placed.symbol == "AAPL"
    assert (placed.quantity, placed.filled_quantity) == (Decimal("10"), Decimal("10"))
    assert placed.filled_avg_price == Decimal("190.25")
    assert placed.broker_order_id == server.orders_for("strat-1-20240102-a")[0].id
    assert await broker.get_order_status(placed.broker_order_id) == placed
    assert await broker.get_order_by_client_id("strat-1-20240102-a") == placed


@pytest.mark.asyncio
async def test_limit_stop_and_fractional_tickets_reach_alpaca_exactly(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    limit = await broker.place_order(
        ticket("l", order_type="limit", limit_price=Decimal("100.25"), quantity=Decimal("2.5"))
    )
    stop = await broker.place_order(
        ticket("s", side="sell", order_type="stop", stop_price=Decimal("0.0125"))
    )
    stop_limit = await broker.place_order(
        ticket(
            "sl",
            order_type="stop_limit",
            stop_price=Decimal("101"),
            limit_price=Decimal("101.5"),
            time_in_force="gtc",
        )
    )

    assert (limit.status, limit.order_type, limit.limit_price) == (
        BrokerOrderStatus.NEW,
        "limit",
        Decimal("100.25"),
    )
    assert limit.quantity == Decimal("2.5") and limit.filled_avg_price is None
    assert (stop.side, stop.stop_price, stop.limit_price) == ("sell", Decimal("0.0125"), None)
    assert server.order(stop_limit.broker_order_id).time_in_force == "gtc"
    assert (stop_limit.stop_price, stop_limit.limit_price) == (Decimal("101"), Decimal("101.5"))


@pytest.mark.asyncio
async def test_partial_then_full_fill_shows_in_get_order_status(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    server.auto_fill = False
    placed = await broker.place_order(ticket(quantity=Decimal("15")))
    order_id = placed.broker_order_id

    server.fill(order_id, "10", "100.10")
    partial = await broker.get_order_status(order_id)
    server.fill(order_id, "5", "100.25")
    full = await broker.get_order_status(order_id)

    assert placed.status is BrokerOrderStatus.NEW and placed.filled_quantity == 0
    assert partial.status is BrokerOrderStatus.PARTIALLY_FILLED
    assert (partial.filled_quantity, partial.filled_avg_price) == (Decimal(10), Decimal("100.1"))
    assert full.status is BrokerOrderStatus.FILLED
    assert (full.filled_quantity, full.filled_avg_price) == (Decimal(15), Decimal("100.15"))
    assert placed.updated_at and partial.updated_at and full.updated_at
    assert placed.updated_at < partial.updated_at < full.updated_at


@pytest.mark.asyncio
async def test_cancel_is_true_once_then_false_when_done(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    server.auto_fill = False
    working = await broker.place_order(ticket("w"))
    filled_id = server.fill((await broker.place_order(ticket("f"))).broker_order_id, 10).id

    assert await broker.cancel_order(working.broker_order_id) is True
    assert await broker.cancel_order(working.broker_order_id) is False
    assert await broker.cancel_order(filled_id) is False
    cancelled = await broker.get_order_status(working.broker_order_id)
    assert cancelled.status is BrokerOrderStatus.CANCELLED


@pytest.mark.asyncio
async def test_unknown_orders_raise_not_found_and_by_client_id_gives_none(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    unknown = str(uuid.uuid4())

    with pytest.raises(OrderNotFoundError, match="order not found"):
        await broker.get_order_status(unknown)
    with pytest.raises(OrderNotFoundError):
        await broker.cancel_order(unknown)
    with pytest.raises(OrderNotFoundError, match="not an Alpaca order id"):
        await broker.get_order_status("sim-42")
    assert await broker.get_order_by_client_id("never-sent") is None
    assert server.requests.count(path=f"{ORDERS}/sim-42") == 0


@pytest.mark.asyncio
async def test_list_open_orders_leaves_done_orders_out(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    server.auto_fill = False
    ids = [(await broker.place_order(ticket(f"o-{i}"))).broker_order_id for i in range(4)]
    server.fill(ids[0], 10)
    server.fill(ids[1], 4)
    server.expire(ids[2])

    open_orders = await broker.list_open_orders()

    assert {o.broker_order_id: o.status for o in open_orders} == {
        ids[1]: BrokerOrderStatus.PARTIALLY_FILLED,
        ids[3]: BrokerOrderStatus.NEW,
    }


@pytest.mark.asyncio
async def test_list_open_orders_pages_back_through_shared_timestamps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pages of 2: the boundary timestamp is read again, repeats dropped, nothing skipped."""
    monkeypatch.setattr(alpaca_module, "PAGE_SIZE", 2)
    start = datetime(2024, 1, 2, 15, tzinfo=UTC)
    stamps = iter(start + timedelta(seconds=s) for s in (1, 2, 2, 3, 4))
    with AlpacaTradingServer(auto_fill=False, now=lambda: next(stamps, start)) as server:
        broker = alpaca_broker(server)
        placed = [(await broker.place_order(ticket(f"p-{i}"))).broker_order_id for i in range(5)]

        found = [o.broker_order_id for o in await broker.list_open_orders()]

    assert found == placed[::-1]
    assert not server.handler_errors


@pytest.mark.asyncio
async def test_positions_are_signed_and_exact(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    server.set_price("TSLA", "200.5")
    await broker.place_order(ticket("long", quantity=Decimal("10")))
    await broker.place_order(ticket("short", symbol="TSLA", side="sell", quantity=Decimal("3")))

    positions = {p.symbol: p for p in await broker.get_positions()}

    assert (positions["AAPL"].quantity, positions["AAPL"].avg_entry_price) == (
        Decimal(10),
        Decimal("190.25"),
    )
    assert positions["TSLA"].quantity == Decimal(-3)
    assert positions["TSLA"].market_value == Decimal("-601.5")


@pytest.mark.asyncio
async def test_account_values_are_decimals(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    await broker.place_order(ticket(quantity=Decimal("10")))

    account = await broker.get_account()

    assert account.account_id == server.account_id
    assert (account.cash, account.buying_power) == (Decimal("98097.5"), Decimal("98097.5"))
    assert account.equity == Decimal(100000)
    assert (account.status, account.trading_blocked, account.currency) == ("ACTIVE", False, "USD")


@pytest.mark.asyncio
async def test_concurrent_calls_share_one_client(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    placed = await asyncio.gather(*(broker.place_order(ticket(f"c-{i}")) for i in range(8)))

    reports = await asyncio.gather(*(broker.get_order_status(o.broker_order_id) for o in placed))

    assert reports == list(placed)
    assert len(server.orders()) == 8


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_duplicate_client_order_id_is_final_and_one_order_stays(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    await broker.place_order(ticket("dup"))

    with pytest.raises(FinalBrokerError, match="client_order_id must be unique") as error:
        await broker.place_order(ticket("dup"))

    assert error.value.details["status"] == 422
    assert error.value.details["alpaca_message"] == "client_order_id must be unique"
    assert len(server.orders_for("dup")) == 1


@pytest.mark.asyncio
async def test_insufficient_buying_power_is_final(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    with pytest.raises(FinalBrokerError, match="insufficient buying power") as error:
        await broker.place_order(ticket(quantity=Decimal("1000")))

    assert error.value.details["status"] == 403
    assert server.orders() == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantity": Decimal("-1")}, "qty must be > 0"),  # refused by Alpaca (422)
        ({"order_type": "limit", "limit_price": Decimal("100.123")}, "sub-penny"),
        ({"order_type": "limit"}, "a limit price is required"),  # refused before sending
        ({"order_type": "stop"}, "a stop price is required"),
        ({"order_type": "trailing_stop"}, "cannot take 'trailing_stop' orders"),
        ({"side": "hold"}, "cannot take this order"),
        ({"time_in_force": "week"}, "cannot take this order"),
        ({"quantity": Decimal("0.12345678901234567890")}, "more digits than Alpaca accepts"),
    ],
)
async def test_tickets_alpaca_cannot_take_are_final(
    broker: AlpacaBroker, server: AlpacaTradingServer, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(FinalBrokerError, match=message):
        await broker.place_order(ticket(**changes))

    assert server.orders() == []


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_temporary_statuses_are_retryable_and_not_retried_by_the_sdk(
    broker: AlpacaBroker, server: AlpacaTradingServer, status: int
) -> None:
    server.faults.add(status=status, path_prefix=ORDERS)

    with pytest.raises(RetryableBrokerError, match=f"answered {status}") as error:
        await broker.place_order(ticket())

    assert error.value.retry_after is None
    assert server.requests.count(path=ORDERS) == 1
    assert server.orders() == []


@pytest.mark.asyncio
async def test_retry_after_is_passed_on(broker: AlpacaBroker, server: AlpacaTradingServer) -> None:
    server.faults.add(status=429, retry_after=7, path_prefix="/v2/account")

    with pytest.raises(RetryableBrokerError) as error:
        await broker.get_account()

    assert error.value.retry_after == 7.0
    assert error.value.details["status"] == 429


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "fault",
    [
        {"reset": True},
        {"delay": 1.0},  # past the broker's 0.3 s timeout
        {"status": 200, "body": "<html>maintenance</html>"},
        {"status": 200, "body": {"id": "not-a-uuid"}},
        {"status": 200, "body": {"unexpected": True}},
    ],
    ids=["reset", "timeout", "html", "bad-id", "wrong-shape"],
)
async def test_lost_or_unreadable_answers_are_retryable(
    broker: AlpacaBroker, server: AlpacaTradingServer, fault: dict[str, Any]
) -> None:
    server.faults.add(path_prefix="/v2/account", **fault)

    with pytest.raises(RetryableBrokerError):
        await broker.get_account()


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 401, 403, 409, 422])
async def test_refusals_are_final(
    broker: AlpacaBroker, server: AlpacaTradingServer, status: int
) -> None:
    server.faults.add(status=status, path_prefix=ORDERS)

    with pytest.raises(FinalBrokerError, match=f"answered {status}") as error:
        await broker.place_order(ticket())

    assert error.value.details["alpaca_code"] == status * 100_000 + 10_000


@pytest.mark.asyncio
async def test_wrong_credentials_are_final(server: AlpacaTradingServer) -> None:
    broker = alpaca_broker(server, secret_key="wrong")

    with pytest.raises(FinalBrokerError, match="answered 403: forbidden"):
        await broker.get_positions()


@pytest.mark.asyncio
async def test_a_non_json_error_body_keeps_its_text(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    server.faults.add(status=400, body="bad gateway config", path_prefix=ORDERS)

    with pytest.raises(FinalBrokerError, match="bad gateway config"):
        await broker.place_order(ticket())


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "lose_answer",
    [{"delay": 1.0}, {"reset": True}, {"status": 504}],
    ids=["timeout", "reset", "gateway-504"],
)
async def test_accepted_then_lost_answer_is_retryable_and_the_order_can_be_found(
    broker: AlpacaBroker, server: AlpacaTradingServer, lose_answer: dict[str, Any]
) -> None:
    server.time_out_after_accept(**lose_answer)

    with pytest.raises(RetryableBrokerError):
        await broker.place_order(ticket("lost-answer"))
    found = await broker.get_order_by_client_id("lost-answer")

    held = server.orders_for("lost-answer")
    assert len(held) == 1
    assert found is not None and found.broker_order_id == held[0].id
    assert found.status is BrokerOrderStatus.FILLED
    with pytest.raises(FinalBrokerError, match="must be unique"):  # a blind resend is refused
        await broker.place_order(ticket("lost-answer"))
    assert len(server.orders_for("lost-answer")) == 1


# -- duplicated and out-of-order reports ------------------------------------------------------------


@pytest.mark.asyncio
async def test_stale_and_duplicated_reports_come_through_as_served(
    broker: AlpacaBroker, server: AlpacaTradingServer
) -> None:
    """The adapter passes reports on as Alpaca sends them; ordering them is the service's job."""
    server.auto_fill = False
    placed = await broker.place_order(ticket("r", quantity=Decimal("10")))
    order_id = placed.broker_order_id
    server.fill(order_id, 3)
    newer = await broker.get_order_status(order_id)
    server.fill(order_id, 3)

    server.serve_stale(order_id)
    stale = await broker.get_order_status(order_id)
    server.serve_duplicate(order_id)
    duplicate = await broker.get_order_by_client_id("r")
    latest = await broker.get_order_status(order_id)

    assert stale == placed  # behind the newer report already served
    assert stale.updated_at and newer.updated_at and stale.updated_at < newer.updated_at
    assert stale.filled_quantity < newer.filled_quantity
    assert duplicate == newer
    assert latest.filled_quantity == Decimal(6)


# -- status mapping -----------------------------------------------------------------------------


def test_every_alpaca_status_is_mapped() -> None:
    assert set(STATUSES) == set(OrderStatus)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("new", 0, BrokerOrderStatus.NEW),
        ("accepted", 0, BrokerOrderStatus.NEW),
        ("pending_new", 0, BrokerOrderStatus.NEW),
        ("accepted_for_bidding", 0, BrokerOrderStatus.NEW),
        ("pending_review", 0, BrokerOrderStatus.NEW),
        ("held", 0, BrokerOrderStatus.NEW),
        ("partially_filled", 4, BrokerOrderStatus.PARTIALLY_FILLED),
        ("filled", 10, BrokerOrderStatus.FILLED),
        ("canceled", 4, BrokerOrderStatus.CANCELLED),
        ("expired", 0, BrokerOrderStatus.EXPIRED),
        ("rejected", 0, BrokerOrderStatus.REJECTED),
        ("replaced", 0, BrokerOrderStatus.CANCELLED),
        ("pending_cancel", 0, BrokerOrderStatus.NEW),
        ("pending_cancel", 4, BrokerOrderStatus.PARTIALLY_FILLED),
        ("pending_replace", 4, BrokerOrderStatus.PARTIALLY_FILLED),
        ("done_for_day", 4, BrokerOrderStatus.PARTIALLY_FILLED),
        ("calculated", 10, BrokerOrderStatus.FILLED),
        ("stopped", 0, BrokerOrderStatus.NEW),
        ("suspended", 4, BrokerOrderStatus.PARTIALLY_FILLED),
    ],
)
async def test_alpaca_statuses_map_to_ours(
    broker: AlpacaBroker,
    server: AlpacaTradingServer,
    status: str,
    filled: int,
    expected: BrokerOrderStatus,
) -> None:
    server.auto_fill = False
    order_id = (await broker.place_order(ticket(quantity=Decimal(10)))).broker_order_id
    if filled:
        server.fill(order_id, filled)
    server.set_status(order_id, status)

    report = await broker.get_order_status(order_id)

    assert report.status is expected
    assert report.filled_quantity == filled
    assert bool(report.reject_reason) == (expected is BrokerOrderStatus.REJECTED)


# -- rate limit shared through Redis -------------------------------------------------------------


class FakeTime:
    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.asyncio
async def test_two_brokers_share_one_redis_budget(
    server: AlpacaTradingServer, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = FakeTime(start=60 * 50_000 + 1)

    def limited() -> AlpacaBroker:
        limiter = RedisRateLimiter(client, "alpaca", 3, clock=clock, sleep=clock.sleep)
        return alpaca_broker(server, rate_limiter=limiter)

    first, second = limited(), limited()
    await first.get_account()
    await second.get_positions()
    await first.list_open_orders()
    assert clock.slept == []

    await second.get_account()  # the fourth request of the minute waits for the next one

    assert len(clock.slept) == 1 and 58.9 < clock.slept[0] < 59.1
    assert int(client.get("ratelimit:alpaca:50000") or 0) == 4  # 3 allowed + 1 over
    assert server.requests.count() == 4


@pytest.fixture
def fresh_limiters() -> Iterator[None]:
    _limiter.cache_clear()
    yield
    _limiter.cache_clear()


@pytest.mark.asyncio
async def test_brokers_from_settings_count_in_the_providers_redis_window(
    server: AlpacaTradingServer,
    settings: SettingsWrapper,
    redis_url: str,
    fresh_limiters: None,
) -> None:
    configure(settings, server, REDIS_URL=redis_url)
    first, second = alpaca_broker_from_settings(), alpaca_broker_from_settings()

    await first.get_account()
    await second.get_account()

    client = redis.Redis.from_url(redis_url)
    counted = sum(int(client.get(key) or 0) for key in client.keys("ratelimit:alpaca:*"))
    assert counted == 2
    limiter = first.client._session.get_adapter(server.url).limiter  # type: ignore[attr-defined]
    assert isinstance(limiter, RedisRateLimiter) and limiter.name == "alpaca"


# -- settings: live gate and credentials ------------------------------------------------------------


def configure(settings: SettingsWrapper, server: AlpacaTradingServer, **extra: Any) -> None:
    settings.ALPACA_API_KEY = server.api_key
    settings.ALPACA_SECRET_KEY = server.secret_key
    settings.ALPACA_BASE_URL = server.url
    settings.ALPACA_LIVE_TRADING_ENABLED = False
    settings.REDIS_URL = ""
    for name, value in extra.items():
        setattr(settings, name, value)


@pytest.mark.asyncio
async def test_paper_broker_from_settings_trades(
    server: AlpacaTradingServer, settings: SettingsWrapper, fresh_limiters: None
) -> None:
    configure(settings, server)
    broker = alpaca_broker_from_settings()

    placed = await broker.place_order(ticket())

    assert broker.paper is True and placed.status is BrokerOrderStatus.FILLED


def test_live_broker_is_refused_unless_enabled(
    server: AlpacaTradingServer, settings: SettingsWrapper, fresh_limiters: None
) -> None:
    configure(settings, server, ALPACA_BASE_URL="")

    with pytest.raises(ConfigurationError, match="ALPACA_LIVE_TRADING_ENABLED"):
        alpaca_broker_from_settings(live=True)

    settings.ALPACA_LIVE_TRADING_ENABLED = True
    live = alpaca_broker_from_settings(live=True)
    paper = alpaca_broker_from_settings()
    assert live.paper is False and live.client._base_url == BaseURL.TRADING_LIVE
    assert paper.paper is True and paper.client._base_url == BaseURL.TRADING_PAPER


def test_paper_broker_refuses_a_base_url_on_the_live_endpoint(
    server: AlpacaTradingServer, settings: SettingsWrapper, fresh_limiters: None
) -> None:
    configure(settings, server, ALPACA_BASE_URL="https://API.alpaca.markets")

    with pytest.raises(ConfigurationError, match="live endpoint"):
        alpaca_broker_from_settings()

    settings.ALPACA_LIVE_TRADING_ENABLED = True
    assert alpaca_broker_from_settings(live=True).paper is False


@pytest.mark.parametrize(
    ("key", "secret", "named"),
    [
        ("", "s", ["ALPACA_API_KEY"]),
        ("k", "", ["ALPACA_SECRET_KEY"]),
        ("", "", ["ALPACA_API_KEY", "ALPACA_SECRET_KEY"]),
    ],
)
def test_missing_credentials_name_the_variables(
    server: AlpacaTradingServer,
    settings: SettingsWrapper,
    fresh_limiters: None,
    key: str,
    secret: str,
    named: list[str],
) -> None:
    configure(settings, server, ALPACA_API_KEY=key, ALPACA_SECRET_KEY=secret)

    with pytest.raises(ConfigurationError, match=" and ".join(named)) as error:
        alpaca_broker_from_settings()

    assert error.value.details == {"missing": named}


def test_the_constructor_refuses_missing_credentials() -> None:
    with pytest.raises(ConfigurationError, match="ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        AlpacaBroker(api_key="key", secret_key="")


@pytest.mark.asyncio
async def test_close_releases_the_session(
    broker: AlpacaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    monkeypatch.setattr(broker.client._session, "close", lambda: closed.append(True))

    await broker.close()

    assert closed == [True]
