"""The loopback Alpaca trading server: the real alpaca-py client parses every answer, the
book moves as Alpaca's would, and the faults and distorted reports happen as configured."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)

from tests.support.alpaca_trading import AlpacaTradingServer

AUTH = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}


def client(server: AlpacaTradingServer) -> Any:
    """The real SDK client (typed Any: its methods return ``Model | RawData`` unions)."""
    trading = TradingClient("test-key", "test-secret", paper=True, url_override=server.url)
    trading._retry = 0
    return trading


def market(symbol: str, qty: float, side: OrderSide = OrderSide.BUY, cid: str = "c-1") -> Any:
    return MarketOrderRequest(
        symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid
    )


def post(server: AlpacaTradingServer, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}/v2/orders", json=body, headers=AUTH, timeout=2)


def order_body(**overrides: Any) -> dict[str, Any]:
    body = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_market_order_fills_at_the_set_price_and_every_answer_parses(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.set_price("AAPL", "190.25")
    trading = client(server)

    placed = trading.submit_order(market("AAPL", 10, cid="cid-1"))
    by_id = trading.get_order_by_id(placed.id)
    by_client_id = trading.get_order_by_client_id("cid-1")

    assert placed.status is OrderStatus.FILLED
    assert (by_id.filled_qty, by_id.filled_avg_price) == ("10", "190.25")
    assert by_client_id.id == placed.id and by_client_id.client_order_id == "cid-1"
    position = trading.get_open_position("AAPL")
    assert (position.qty, position.avg_entry_price, position.side.value) == ("10", "190.25", "long")
    account = trading.get_account()
    assert account.cash == "98097.5" and account.equity == "100000"
    assert server.position("AAPL") == Decimal(10)
    assert server.cash == Decimal("98097.5")
    assert [f.price for f in server.fills(str(placed.id))] == [Decimal("190.25")]


def test_limit_order_works_until_filled_partly_then_fully(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    trading = client(server)
    placed = trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=15,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=100.25,
            client_order_id="lim-1",
        )
    )
    order_id = str(placed.id)
    assert placed.status is OrderStatus.NEW and placed.limit_price == "100.25"

    first = server.fill(order_id, 10, "100.10")
    second = server.fill(order_id, 5)  # at the limit price

    assert first.status == "partially_filled" and first.filled_qty == Decimal(10)
    assert second.status == "filled" and second.filled_avg_price == Decimal("100.15")
    assert second.updated_at > first.updated_at
    report = trading.get_order_by_id(order_id)
    assert (report.status, report.filled_qty, report.filled_avg_price) == (
        OrderStatus.FILLED,
        "15",
        "100.15",
    )
    assert server.position("MSFT") == Decimal(15)
    assert server.cash == Decimal(100000) - Decimal("1001.0") - Decimal("501.25")
    with pytest.raises(ValueError, match="is filled"):
        server.fill(order_id, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (order_body(symbol=None), "symbol is required"),
        (order_body(qty="0"), "qty must be > 0"),
        (order_body(qty="-3"), "qty must be > 0"),
        (order_body(qty=None), "qty is required"),
        (order_body(side="hold"), "invalid side"),
        (order_body(type="trailing_stop"), "invalid type"),
        (order_body(time_in_force="week"), "invalid time_in_force"),
        (order_body(type="limit"), "limit_price is required for limit orders"),
        (order_body(type="stop"), "stop_price is required for stop orders"),
        (order_body(type="limit", limit_price="100.123"), "sub-penny increment"),
        (order_body(qty="1.5", time_in_force="gtc"), "fractional orders must be DAY orders"),
        (order_body(client_order_id="x" * 129), "client_order_id must be no more than 128"),
    ],
)
def test_invalid_orders_are_refused_with_alpacas_422(
    alpaca_trading_server: AlpacaTradingServer, body: dict[str, Any], message: str
) -> None:
    answer = post(alpaca_trading_server, body)

    assert answer.status_code == 422
    assert answer.json()["code"] == 42210000
    assert message in answer.json()["message"]
    assert alpaca_trading_server.orders() == []


def test_duplicate_client_order_id_is_refused_and_one_order_stays(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    assert post(server, order_body(client_order_id="dup")).status_code == 200

    again = post(server, order_body(client_order_id="dup", qty="3"))

    assert again.status_code == 422
    assert again.json() == {"code": 42210000, "message": "client_order_id must be unique"}
    assert [o.qty for o in server.orders_for("dup")] == [Decimal(10)]


def test_without_the_uniqueness_check_orders_for_shows_the_double_submission(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    alpaca_trading_server.unique_client_order_ids = False
    post(alpaca_trading_server, order_body(client_order_id="dup"))
    post(alpaca_trading_server, order_body(client_order_id="dup"))

    assert len(alpaca_trading_server.orders_for("dup")) == 2


def test_a_buy_beyond_cash_is_refused_with_403(alpaca_trading_server: AlpacaTradingServer) -> None:
    server = alpaca_trading_server
    server.set_price("AAPL", "1000")
    server.auto_fill = False
    assert post(server, order_body(qty="60")).status_code == 200  # reserves $60,000

    answer = post(server, order_body(qty="41", client_order_id="too-much"))

    assert answer.status_code == 403
    assert answer.json() == {"code": 40310000, "message": "insufficient buying power"}
    assert server.orders_for("too-much") == []
    assert post(server, order_body(qty="40", side="buy")).status_code == 200
    assert post(server, order_body(qty="500", side="sell")).status_code == 200  # short: no cash


def test_without_auto_fill_orders_stay_in_the_initial_status(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.set_price("AAPL", "10")
    server.auto_fill = False
    server.initial_status = "accepted"

    placed = client(server).submit_order(market("AAPL", 1))

    assert placed.status is OrderStatus.ACCEPTED and placed.filled_qty == "0"
    assert server.order(str(placed.id)).status == "accepted"


def test_cancel_answers_204_then_422_once_done_and_404_when_unknown(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    trading = client(server)
    order_id = trading.submit_order(market("AAPL", 1)).id

    trading.cancel_order_by_id(order_id)
    with pytest.raises(APIError) as again:
        trading.cancel_order_by_id(order_id)
    with pytest.raises(APIError) as unknown:
        trading.cancel_order_by_id("5a1c2c8e-0000-4000-8000-000000000000")

    assert server.order(str(order_id)).status == "canceled"
    assert server.requests.count(method="DELETE", status=204) == 1
    assert (again.value.status_code, again.value.message) == (422, "order is not cancelable")
    assert (unknown.value.status_code, unknown.value.message) == (404, "order not found")


def test_a_pending_cancel_can_still_fill_until_confirmed(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    server.auto_cancel = False
    trading = client(server)
    order_id = str(trading.submit_order(market("AAPL", 10)).id)

    trading.cancel_order_by_id(order_id)
    pending = server.fill(order_id, 4, "50")
    done = server.confirm_cancel(order_id)

    assert pending.status == "pending_cancel" and pending.filled_qty == Decimal(4)
    assert done.status == "canceled" and done.canceled_at is not None
    assert trading.get_order_by_id(order_id).filled_qty == "4"


def test_cancel_all_answers_207_with_one_result_per_open_order(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    trading = client(server)
    ids = {trading.submit_order(market("AAPL", 1, cid=f"c-{i}")).id for i in range(3)}

    results = trading.cancel_orders()

    assert server.requests.last(method="DELETE").status == 207
    assert {r.id for r in results} == ids and {r.status for r in results} == {200}
    assert {o.status for o in server.orders()} == {"canceled"}


def test_order_list_filters_by_status_symbols_limit_and_time(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    trading = client(server)
    placed = [
        trading.submit_order(market(symbol, 1, cid=f"c-{i}"))
        for i, symbol in enumerate(["AAPL", "MSFT", "AAPL", "TSLA"])
    ]
    server.expire(str(placed[1].id))

    def ids(**filters: Any) -> list[str]:
        return [o.client_order_id for o in trading.get_orders(GetOrdersRequest(**filters))]

    assert ids() == ["c-3", "c-2", "c-0"]  # open, newest first
    assert ids(status=QueryOrderStatus.CLOSED) == ["c-1"]
    assert ids(status=QueryOrderStatus.ALL, direction="asc", limit=2) == ["c-0", "c-1"]
    assert ids(symbols=["AAPL"]) == ["c-2", "c-0"]
    assert ids(status=QueryOrderStatus.ALL, until=placed[2].submitted_at) == ["c-1", "c-0"]
    too_many = requests.get(f"{server.url}/v2/orders?limit=501", headers=AUTH, timeout=2)
    assert too_many.status_code == 422


def test_positions_404_when_flat_close_sells_and_shorts_are_negative(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.set_price("AAPL", "100")
    server.set_price("TSLA", "200")
    trading = client(server)
    with pytest.raises(APIError) as flat:
        trading.get_open_position("AAPL")
    trading.submit_order(market("AAPL", 10, cid="buy"))
    trading.submit_order(market("TSLA", 3, side=OrderSide.SELL, cid="short"))

    closing = trading.close_position("AAPL", ClosePositionRequest(qty="4"))
    positions = {p.symbol: p for p in trading.get_all_positions()}

    assert (flat.value.status_code, flat.value.message) == (404, "position does not exist")
    assert closing.side is OrderSide.SELL and closing.filled_qty == "4"
    assert positions["AAPL"].qty == "6"
    assert (positions["TSLA"].qty, positions["TSLA"].side.value) == ("-3", "short")
    assert positions["TSLA"].market_value == "-600"
    assert server.position("TSLA") == Decimal(-3)
    assert trading.get_account().equity == "100000"


def test_reject_and_expire_end_open_orders(alpaca_trading_server: AlpacaTradingServer) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    trading = client(server)
    first = str(trading.submit_order(market("AAPL", 1, cid="a")).id)
    second = str(trading.submit_order(market("AAPL", 5, cid="b")).id)
    server.set_price("AAPL", "10")

    server.reject(first, "symbol halted")
    server.fill(second, 2)
    server.expire(second)

    assert trading.get_order_by_id(first).status is OrderStatus.REJECTED
    assert server.order(first).reject_reason == "symbol halted"
    expired = trading.get_order_by_id(second)
    assert (expired.status, expired.filled_qty) == (OrderStatus.EXPIRED, "2")
    with pytest.raises(ValueError, match="expired"):
        server.reject(second)


def test_unknown_client_order_id_answers_404(alpaca_trading_server: AlpacaTradingServer) -> None:
    with pytest.raises(APIError) as error:
        client(alpaca_trading_server).get_order_by_client_id("never-sent")

    assert error.value.status_code == 404


def test_credentials_are_checked(alpaca_trading_server: AlpacaTradingServer) -> None:
    url = f"{alpaca_trading_server.url}/v2/account"
    assert requests.get(url, timeout=2).status_code == 401
    wrong = {**AUTH, "APCA-API-SECRET-KEY": "nope"}
    assert requests.get(url, headers=wrong, timeout=2).status_code == 403


def test_controls_refuse_floats(alpaca_trading_server: AlpacaTradingServer) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        alpaca_trading_server.set_price("AAPL", 1.1)  # type: ignore[arg-type]


# -- faults -----------------------------------------------------------------------------------


def test_accepted_then_timed_out_keeps_the_order(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.time_out_after_accept(delay=1.0)

    with pytest.raises(requests.Timeout):
        requests.post(
            f"{server.url}/v2/orders",
            json=order_body(client_order_id="lost-answer"),
            headers=AUTH,
            timeout=0.2,
        )

    assert len(server.orders_for("lost-answer")) == 1
    assert post(server, order_body(client_order_id="next")).status_code == 200  # one-shot


@pytest.mark.parametrize(("reset", "status"), [(True, None), (False, 504)])
def test_accepted_then_reset_or_gateway_error_keeps_the_order(
    alpaca_trading_server: AlpacaTradingServer, reset: bool, status: int | None
) -> None:
    server = alpaca_trading_server
    server.time_out_after_accept(reset=reset, status=status)

    if reset:
        with pytest.raises(requests.ConnectionError):
            post(server, order_body(client_order_id="lost"))
    else:
        assert post(server, order_body(client_order_id="lost")).status_code == 504

    assert len(server.orders_for("lost")) == 1
    assert server.requests.last(method="POST").fault.startswith("after handling")  # type: ignore[union-attr]


def test_a_plain_fault_stops_the_request_before_the_book(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.faults.add(status=503, path_prefix="/v2/orders", method="POST")

    assert post(server, order_body(client_order_id="never")).status_code == 503
    assert server.orders_for("never") == []


# -- duplicated and stale reports ---------------------------------------------------------------


def test_duplicate_report_repeats_the_last_snapshot_served(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    server.set_price("AAPL", "10")
    trading = client(server)
    order_id = str(trading.submit_order(market("AAPL", 10, cid="d")).id)
    server.fill(order_id, 3)
    seen = trading.get_order_by_id(order_id)
    server.fill(order_id, 3)

    server.serve_duplicate(order_id)
    repeated = trading.get_order_by_client_id("d")
    fresh = trading.get_order_by_id(order_id)

    assert repeated == seen and repeated.filled_qty == "3"
    assert fresh.filled_qty == "6" and fresh.updated_at > seen.updated_at


def test_stale_report_goes_back_behind_a_newer_one(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    server.set_price("AAPL", "10")
    trading = client(server)
    order_id = str(trading.submit_order(market("AAPL", 10, cid="s")).id)
    server.fill(order_id, 3)
    server.fill(order_id, 3)
    newer = trading.get_order_by_id(order_id)  # 6 filled

    server.serve_stale(order_id, times=2)
    older = trading.get_order_by_id(order_id)  # one version back: 3 filled
    older_by_client_id = trading.get_order_by_client_id("s")
    current = trading.get_order_by_id(order_id)

    assert older.filled_qty == "3" and older.updated_at < newer.updated_at
    assert older_by_client_id == older
    assert current == newer
    assert [s["filled_qty"] for s in server.served(order_id)] == ["0", "6", "3", "3", "6"]


def test_distortions_apply_to_the_named_order_only(
    alpaca_trading_server: AlpacaTradingServer,
) -> None:
    server = alpaca_trading_server
    server.auto_fill = False
    trading = client(server)
    first = str(trading.submit_order(market("AAPL", 1, cid="x")).id)
    second = str(trading.submit_order(market("AAPL", 1, cid="y")).id)
    server.set_status(second, "held")
    server.serve_stale(first, versions_back=5)

    assert trading.get_order_by_id(second).status is OrderStatus.HELD
    assert trading.get_order_by_id(first).status is OrderStatus.NEW
    with pytest.raises(ValueError, match="unknown Alpaca order status"):
        server.set_status(first, "lost")
