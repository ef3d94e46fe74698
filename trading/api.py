"""``/v1/positions`` and ``/v1/orders``: the trading app's routers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from common.api import (
    COUNT_CAP,
    MAX_ID,
    Data,
    Day,
    DecimalString,
    Id,
    Out,
    Page,
    PageParams,
    day_range,
    decimal_text,
    paginate,
    responses,
)
from common.api import Symbol as SymbolIn
from common.auth import Role, acting_user, require_role
from common.idempotency import idempotency_header, idempotency_scope, mark_replayed
from quant.errors import ApplicationError
from quant.orders.fsm import OrderStatus
from research.selectors import strategy_by_id
from trading import selectors
from trading.metrics import metrics_summary
from trading.models import Order, OrderSource, Position
from trading.services.submit import default_mode, order_submit_once

positions_router = Router(tags=["positions"])
metrics_router = Router(tags=["metrics"])
orders_router = Router(tags=["orders"])
IDEMPOTENCY_KEY = idempotency_header()

Mode = Literal["paper", "live"]
Status_ = Literal[
    "pending", "submitted", "partially_filled", "filled", "rejected", "cancelled", "expired"
]


class PositionOut(Out):
    id: int
    strategy_id: int
    strategy_name: str
    mode: str
    symbol: str
    quantity: str
    avg_price: str
    last_price: str | None
    market_value: str | None
    unrealized_pnl: str | None
    realized_pnl: str
    last_fill_at: datetime | None
    updated_at: datetime


class OrderOut(Out):
    id: int
    client_order_id: str
    broker_order_id: str
    strategy_id: int
    strategy_name: str
    mode: str
    broker: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: str
    filled_quantity: str
    avg_fill_price: str | None
    limit_price: str | None
    stop_price: str | None
    commission: str
    status: str
    source: str
    reason: str
    reject_reason: str
    created_at: datetime
    submitted_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime


class FillOut(Out):
    id: int
    broker_fill_id: str
    quantity: str
    price: str
    commission: str
    ts: datetime


class OrderDetailOut(OrderOut):
    fills: list[FillOut]


class PositionDetailOut(PositionOut):
    entry_orders: list[OrderOut]


class PositionFilters(PageParams):
    strategy_id: int | None = Field(None, ge=1, le=MAX_ID)
    symbol: str | None = Field(None, max_length=32)
    mode: Mode | None = None


class OrderFilters(PageParams):
    strategy_id: int | None = Field(None, ge=1, le=MAX_ID)
    status: Status_ | None = None
    mode: Mode | None = None
    symbol: str | None = Field(None, max_length=32)
    from_date: Day | None = Field(
        None, description="first day included (UTC), 1900-01-01 to 2199-12-31"
    )
    to_date: Day | None = Field(
        None, description="last day included (UTC), 1900-01-01 to 2199-12-31, not before from_date"
    )


Quantity = Annotated[Decimal, DecimalString(14, 6, positive=True)]


class OrderIn(Schema):
    strategy_id: int = Field(ge=1, le=MAX_ID)
    symbol: SymbolIn
    side: Literal["buy", "sell"]
    quantity: Quantity = Field(description='a positive decimal string, e.g. "10" or "0.5"')
    mode: Mode | None = Field(
        None,
        description="default: the strategy's mode; live needs ALPACA_LIVE_TRADING_ENABLED "
        "(else 409 live_trading_disabled)",
    )
    limit_price: Quantity | None = Field(None, description="a limit order at this price")
    stop_distance: Quantity | None = Field(None, description="stop this far from the fill")
    reason: str = Field("manual order (API)", max_length=200)


class RiskRejected(ApplicationError):
    """The risk gateway refused the order: its reason goes to the caller verbatim."""

    code = "risk_rejected"
    http_status = 422


# The columns the list shapes show (the rest of the row and of its strategy are not read).
ORDER_FIELDS = (
    *(name for name in OrderOut.model_fields if name not in ("strategy_name", "id")),
    "id",
    "strategy__name",
)
POSITION_FIELDS = (
    "id",
    "strategy_id",
    "strategy__name",
    "mode",
    "symbol",
    "quantity",
    "avg_price",
    "realized_pnl",
    "last_fill_at",
    "updated_at",
)


def position_out(valued: selectors.PositionValue) -> dict[str, Any]:
    p = valued.position
    return {
        "id": p.pk,
        "strategy_id": p.strategy_id,
        "strategy_name": p.strategy.name,
        "mode": p.mode,
        "symbol": p.symbol,
        "quantity": decimal_text(p.quantity),
        "avg_price": decimal_text(p.avg_price),
        "last_price": decimal_text(valued.last_price),
        "market_value": decimal_text(valued.market_value),
        "unrealized_pnl": decimal_text(valued.unrealized_pnl),
        "realized_pnl": decimal_text(p.realized_pnl),
        "last_fill_at": p.last_fill_at,
        "updated_at": p.updated_at,
    }


def positions_out(rows: Iterable[Position]) -> list[dict[str, Any]]:
    return [position_out(v) for v in selectors.positions_valued(rows)]


def order_out(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "broker_order_id": order.broker_order_id,
        "strategy_id": order.strategy_id,
        "strategy_name": order.strategy.name,
        "mode": order.mode,
        "broker": order.broker,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "time_in_force": order.time_in_force,
        "quantity": decimal_text(order.quantity),
        "filled_quantity": decimal_text(order.filled_quantity),
        "avg_fill_price": decimal_text(order.avg_fill_price),
        "limit_price": decimal_text(order.limit_price),
        "stop_price": decimal_text(order.stop_price),
        "commission": decimal_text(order.commission),
        "status": order.status,
        "source": order.source,
        "reason": order.reason,
        "reject_reason": order.reject_reason,
        "created_at": order.created_at,
        "submitted_at": order.submitted_at,
        "closed_at": order.closed_at,
        "updated_at": order.updated_at,
    }


def order_detail_out(order: Order) -> dict[str, Any]:
    return {
        **order_out(order),
        "fills": [
            {
                "id": f.pk,
                "broker_fill_id": f.broker_fill_id,
                "quantity": decimal_text(f.quantity),
                "price": decimal_text(f.price),
                "commission": decimal_text(f.commission),
                "ts": f.ts,
            }
            for f in selectors.order_fills(order=order)
        ],
    }


@positions_router.get("", response=responses(200, Page(PositionOut), 422))
def positions_list(request: HttpRequest, filters: Query[PositionFilters]) -> dict[str, Any]:
    """Open positions with their newest price, market value and unrealized P&L."""
    require_role(request, Role.VIEWER)
    queryset = selectors.positions_list(
        strategy_id=filters.strategy_id, symbol=filters.symbol, mode=filters.mode
    ).only(*POSITION_FIELDS)
    return paginate(queryset, filters, positions_out)


@positions_router.get("/{position_id}", response=responses(200, Data(PositionDetailOut), 404, 422))
def position_get(request: HttpRequest, position_id: Id) -> dict[str, Any]:
    """One position with the orders that filled into it."""
    require_role(request, Role.VIEWER)
    position = selectors.position_get(position_id=position_id)
    orders = selectors.position_orders(position=position)
    return {
        "data": {
            **positions_out([position])[0],
            "entry_orders": [order_out(o) for o in orders],
        }
    }


@orders_router.get("", response=responses(200, Page(OrderOut), 422))
def orders_list(request: HttpRequest, filters: Query[OrderFilters]) -> dict[str, Any]:
    """Orders, most recent first."""
    require_role(request, Role.VIEWER)
    start, end = day_range(filters.from_date, filters.to_date)
    queryset = selectors.orders_list(
        strategy_id=filters.strategy_id,
        status=filters.status,
        mode=filters.mode,
        symbol=filters.symbol,
        from_date=start,
        to_date=end,
    ).only(*ORDER_FIELDS)
    return paginate(
        queryset, filters, lambda rows: [order_out(o) for o in rows], count_cap=COUNT_CAP
    )


@orders_router.get("/{order_id}", response=responses(200, Data(OrderDetailOut), 404, 422))
def order_get(request: HttpRequest, order_id: Id) -> dict[str, Any]:
    require_role(request, Role.VIEWER)
    return {"data": order_detail_out(selectors.order_get(order_id=order_id))}


@orders_router.post("", response=responses(201, Data(OrderDetailOut), 403, 404, 409, 422))
def order_place(
    request: HttpRequest,
    response: HttpResponse,
    payload: OrderIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status[Any]:
    """A manual order through the risk gateway (operator). A strategy trades only in a mode it
    was promoted to: otherwise 409 ``gate_closed`` and nothing is stored; a live order while
    live trading is switched off is 409 ``live_trading_disabled``. A rejection by the
    gateway answers 422 ``risk_rejected`` with its reason verbatim; the order stays on record."""

    principal = require_role(request, Role.OPERATOR)
    strategy = strategy_by_id(strategy_id=payload.strategy_id)
    mode = payload.mode or default_mode(strategy)
    user = acting_user(principal)
    once = order_submit_once(
        idempotency_key=idempotency_scope(user.pk, idempotency_key),
        strategy=strategy,
        mode=mode,
        symbol=payload.symbol,
        side=payload.side,
        quantity=payload.quantity,
        order_type="limit" if payload.limit_price is not None else "market",
        limit_price=payload.limit_price,
        stop_distance=payload.stop_distance,
        source=OrderSource.MANUAL,
        reason=f"{payload.reason} (by {user.get_username()})"[:200],
    )
    order = once.value
    mark_replayed(response, once)
    if order.status == OrderStatus.REJECTED and order.submit_started_at is None:
        raise RiskRejected(
            order.reject_reason,
            details={"order_id": order.pk, "client_order_id": order.client_order_id},
        )
    return Status(201, {"data": order_detail_out(selectors.order_get(order_id=order.pk))})


# --- /v1/metrics ------------------------------------------------------------------------


class CurvePoint(Out):
    ts: datetime
    value: str


class StrategyMetricsOut(Out):
    strategy_id: int
    name: str
    fills: int
    closing_fills: int
    win_rate: str | None
    traded_notional: str
    commission: str
    realized_pnl: str


class MetricsSummaryOut(Out):
    period: str
    mode: str
    bucket: str = Field(description="resolution of the curves: 1Min, 1Hour or 1Day")
    start: datetime | None
    end: datetime
    start_equity: str | None
    end_equity: str | None
    total_pnl: str | None
    return_pct: str | None
    realized_pnl: str
    commission: str
    sharpe: str | None
    sortino: str | None
    max_drawdown_pct: str
    win_rate: str | None
    turnover: str
    traded_notional: str
    fills: int
    closing_fills: int
    equity_curve: list[CurvePoint]
    drawdown_curve: list[CurvePoint]
    strategies: list[StrategyMetricsOut]


class MetricsParams(Schema):
    period: Literal["1d", "1w", "1m", "3m", "1y", "all"] = "1m"
    mode: Literal["paper", "live"] = "paper"


def metrics_out(summary: dict[str, Any]) -> dict[str, Any]:
    money = (
        "start_equity",
        "end_equity",
        "total_pnl",
        "return_pct",
        "realized_pnl",
        "commission",
        "sharpe",
        "sortino",
        "max_drawdown_pct",
        "win_rate",
        "turnover",
        "traded_notional",
    )
    out = {**summary, **{k: decimal_text(summary[k]) for k in money}}
    out["equity_curve"] = [{"ts": t, "value": decimal_text(v)} for t, v in summary["equity_curve"]]
    out["drawdown_curve"] = [
        {"ts": t, "value": decimal_text(v)} for t, v in summary["drawdown_curve"]
    ]
    out["strategies"] = [
        {
            "strategy_id": s.strategy_id,
            "name": s.name,
            "fills": s.fills,
            "closing_fills": s.closing_fills,
            "win_rate": decimal_text(s.win_rate),
            "traded_notional": decimal_text(s.traded_notional),
            "commission": decimal_text(s.commission),
            "realized_pnl": decimal_text(s.realized_pnl),
        }
        for s in summary["strategies"]
    ]
    return out


@metrics_router.get("/summary", response=responses(200, Data(MetricsSummaryOut), 422))
def summary(request: HttpRequest, params: Query[MetricsParams]) -> dict[str, Any]:
    """P&L, Sharpe, Sortino, drawdown, win rate and turnover of paper or live trading over
    the period, across strategies (and per strategy), with the equity and drawdown curves."""
    require_role(request, Role.VIEWER)
    return {"data": metrics_out(metrics_summary(period=params.period, mode=params.mode))}
