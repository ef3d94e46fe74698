"""``/v1/runs`` (backtests) and ``/v1/walk-forward``: the backtests app's routers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status
from pydantic import model_validator

from backtests import selectors
from backtests.models import BacktestRun, WalkForwardRun
from backtests.services import backtest_run_cancel, backtest_run_start
from backtests.walkforward_services import walk_forward_run_cancel, walk_forward_run_start
from common.api import (
    MAX_ID,
    Accepted,
    Data,
    Day,
    DecimalString,
    Id,
    Out,
    Page,
    PageParams,
    SymbolList,
    accepted,
    decimal_text,
    paginate,
    responses,
)
from common.auth import Role, acting_user, require_role
from common.idempotency import idempotency_header, idempotency_scope, mark_replayed
from quant.backtest import BacktestConfig, EngineMode, FillAt
from quant.backtest.walkforward import WalkForwardConfig
from quant.errors import ValidationError
from research.selectors import strategy_by_id, strategy_version_get

router = Router(tags=["runs"])
walk_forward_router = Router(tags=["walk-forward"])

RunStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
MAX_TRADES = 5000


class RunOut(Out):
    id: int
    run_type: str
    strategy_id: int | None
    strategy_name: str
    strategy_version: int | None
    status: str
    progress: float
    engine_mode: str
    symbols: list[str]
    timeframe: str
    start: datetime | None
    end: datetime | None
    metrics: dict[str, Any] | None
    final_equity: str | None
    total_trades: int | None
    error_message: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TradeOut(Out):
    seq: int
    symbol: str
    side: str
    quantity: str
    entry_time: datetime
    entry_price: str
    exit_time: datetime
    exit_price: str
    commission: str
    pnl: str
    bars_held: int


class RunDetailOut(RunOut):
    backtest_config: dict[str, Any]
    strategy_config: dict[str, Any]
    data_start: datetime | None
    data_end: datetime | None
    bar_count: int | None
    equity_curve: list[dict[str, Any]]
    open_positions: list[dict[str, Any]]
    trades: list[TradeOut]
    trades_total: int
    report_html_url: str | None
    report_json_url: str | None


class RunFilters(PageParams):
    strategy_id: int | None = Field(None, ge=1, le=MAX_ID)
    status: RunStatusName | None = None
    run_type: Literal["backtest"] | None = Field(
        None, description="backtest (walk-forward runs are under /v1/walk-forward)"
    )


class JobIn(Schema):
    """What a backtest and a walk-forward run both take: the strategy, the data range and the
    costs (the strategy's current version runs). ``end`` may not be before ``start`` (422);
    symbols are distinct (a duplicate is a 422 with the request)."""

    strategy_id: int = Field(ge=1, le=MAX_ID)
    start: Day | None = Field(None, description="first day (UTC); default: the first bar")
    end: Day | None = Field(
        None, description="last day (UTC), not before start; default: the newest bar"
    )
    symbols: SymbolList | None = Field(None, description="distinct; default: the config's")
    initial_capital: Annotated[Decimal, DecimalString(18, 2, positive=True)] = Field(
        Decimal("100000"), description='a decimal string, e.g. "100000"'
    )
    commission_per_trade: Annotated[Decimal, DecimalString(8, 4)] = Field(
        Decimal("1.00"), description='per trade, a decimal string, e.g. "1.00"'
    )
    slippage_bps: Annotated[Decimal, DecimalString(4, 4)] = Field(
        Decimal("10"), description='basis points below 10000, a decimal string, e.g. "10"'
    )

    @model_validator(mode="after")
    def _range(self) -> JobIn:
        if self.start and self.end and self.end < self.start:
            raise ValidationError(
                f"end {self.end} is before start {self.start}",
                details={"problems": ["body.payload.end: before start"]},
            )
        return self

    def backtest_config(self, **extra: Any) -> Any:

        return BacktestConfig(
            initial_capital=self.initial_capital,
            commission_per_trade=self.commission_per_trade,
            slippage_bps=self.slippage_bps,
            start_date=_day(self.start),
            end_date=_day(self.end, end=True),
            **extra,
        )

    def symbol_override(self) -> tuple[str, ...] | None:
        return tuple(self.symbols) if self.symbols else None


class BacktestIn(JobIn):
    engine_mode: Literal["event", "vectorized"] = "event"
    fill_at: Literal["close", "next_open"] = "close"


def run_out(run: BacktestRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "run_type": "backtest",
        "strategy_id": run.strategy_id,
        "strategy_name": run.strategy.name if run.strategy else "",
        "strategy_version": run.strategy_version.number if run.strategy_version else None,
        "status": run.status,
        "progress": run.progress,
        "engine_mode": run.engine_mode,
        "symbols": list(run.symbols or []),
        "timeframe": run.timeframe,
        "start": run.start,
        "end": run.end,
        "metrics": run.metrics,
        "final_equity": decimal_text(run.final_equity),
        "total_trades": run.total_trades,
        "error_message": run.error_message,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def run_detail_out(run: BacktestRun) -> dict[str, Any]:
    trades = list(selectors.backtest_trades_list(run=run)[:MAX_TRADES])
    return {
        **run_out(run),
        "backtest_config": run.backtest_config or {},
        "strategy_config": run.strategy_config or {},
        "data_start": run.data_start,
        "data_end": run.data_end,
        "bar_count": run.bar_count,
        "equity_curve": run.equity_curve or [],
        "open_positions": run.open_positions or [],
        "trades": [
            {
                "seq": t.seq,
                "symbol": t.symbol,
                "side": t.side,
                "quantity": decimal_text(t.quantity),
                "entry_time": t.entry_time,
                "entry_price": decimal_text(t.entry_price),
                "exit_time": t.exit_time,
                "exit_price": decimal_text(t.exit_price),
                "commission": decimal_text(t.commission),
                "pnl": decimal_text(t.pnl),
                "bars_held": t.bars_held,
            }
            for t in trades
        ],
        "trades_total": run.total_trades or len(trades),
        "report_html_url": f"/backtests/runs/{run.pk}/report.html" if run.report_html else None,
        "report_json_url": f"/backtests/runs/{run.pk}/report.json" if run.report_json else None,
    }


def _day(day: date | None, *, end: bool = False) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, time.max if end else time.min, UTC)


@router.get("", response=responses(200, Page(RunOut), 422))
def runs_list(request: HttpRequest, filters: Query[RunFilters]) -> dict[str, Any]:
    """Backtest runs, newest first (the heavy columns are left out of the list)."""
    require_role(request, Role.VIEWER)
    queryset = selectors.backtest_runs_list(
        strategy_id=filters.strategy_id, status=filters.status
    ).defer("equity_curve", "open_positions", "strategy_config", "backtest_config")
    return paginate(queryset, filters, lambda rows: [run_out(r) for r in rows])


@router.post("", response=responses(202, Data(Accepted), 403, 404, 409, 422))
def run_start(
    request: HttpRequest,
    response: HttpResponse,
    payload: BacktestIn,
    idempotency_key: str | None = idempotency_header(),
) -> Status[Any]:
    """Queue a backtest of the strategy's current version: 202 with the run id and a
    Location to poll (``GET /v1/runs/{id}``: status, progress, then metrics and trades)."""

    principal = require_role(request, Role.OPERATOR)
    strategy = strategy_by_id(strategy_id=payload.strategy_id)
    version = strategy_version_get(strategy=strategy)
    config = payload.backtest_config(fill_at=FillAt(payload.fill_at))
    user = acting_user(principal)
    once = backtest_run_start(
        strategy_version=version,
        config=config,
        mode=EngineMode(payload.engine_mode),
        symbols=payload.symbol_override(),
        requested_by=user,
        idempotency_key=idempotency_scope(user.pk, idempotency_key),
    )
    mark_replayed(response, once)
    return accepted(response, f"/v1/runs/{once.value.pk}", once.value)


@router.get("/{run_id}", response=responses(200, Data(RunDetailOut), 404, 422))
def run_get(request: HttpRequest, run_id: Id) -> dict[str, Any]:
    """One run: status and progress, then its metrics, equity curve and trades."""
    require_role(request, Role.VIEWER)
    return {"data": run_detail_out(selectors.backtest_run_get(run_id=run_id))}


@router.post("/{run_id}/cancel", response=responses(200, Data(RunOut), 403, 404, 409, 422))
def run_cancel(request: HttpRequest, run_id: Id) -> dict[str, Any]:
    """Cancel a queued run, or ask a running one to stop."""

    require_role(request, Role.OPERATOR)
    run = backtest_run_cancel(run=selectors.backtest_run_get(run_id=run_id))
    return {"data": run_out(run)}


# --- /v1/walk-forward -------------------------------------------------------------------


class WalkForwardOut(Out):
    id: int
    strategy_id: int | None
    strategy_name: str
    strategy_version: int | None
    status: str
    progress: float
    tasks_done: int
    tasks_total: int
    symbols: list[str]
    timeframe: str
    wf_config: dict[str, Any]
    error_message: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class WindowOut(Out):
    index: int
    in_sample_start: datetime
    in_sample_end: datetime
    out_of_sample_start: datetime
    out_of_sample_end: datetime
    best_params: dict[str, Any] | None
    in_sample_metrics: dict[str, Any] | None
    out_of_sample_metrics: dict[str, Any] | None
    in_sample_trades: int | None
    out_of_sample_trades: int | None
    flag: str


class WalkForwardDetailOut(WalkForwardOut):
    backtest_config: dict[str, Any]
    result: dict[str, Any] | None
    equity_curve: list[Any]
    windows: list[WindowOut]
    report_html_url: str | None


class WalkForwardFilters(PageParams):
    strategy_id: int | None = Field(None, ge=1, le=MAX_ID)
    status: RunStatusName | None = None


class WalkForwardIn(JobIn):
    in_sample_days: int = Field(ge=1, le=100_000)
    out_of_sample_days: int = Field(ge=1, le=100_000)
    step_days: int = Field(ge=1, le=100_000)
    window_type: Literal["rolling", "anchored"] = "rolling"
    parameter_grid: dict[str, list[Any]] = Field(
        default_factory=dict, description='e.g. {"fast": [5, 10], "slow": [30, 50]}'
    )
    objective: str = Field("sharpe", max_length=40)
    min_trades_required: int = Field(1, ge=0, le=100_000)


def walk_forward_out(run: WalkForwardRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "strategy_id": run.strategy_id,
        "strategy_name": run.strategy.name if run.strategy else "",
        "strategy_version": run.strategy_version.number if run.strategy_version else None,
        "status": run.status,
        "progress": run.progress,
        "tasks_done": run.tasks_done,
        "tasks_total": run.tasks_total,
        "symbols": list(run.symbols or []),
        "timeframe": run.timeframe,
        "wf_config": run.wf_config or {},
        "error_message": run.error_message,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def walk_forward_detail_out(run: WalkForwardRun) -> dict[str, Any]:
    windows = selectors.walk_forward_windows(run=run)
    return {
        **walk_forward_out(run),
        "backtest_config": run.backtest_config or {},
        "result": run.result,
        "equity_curve": run.equity_curve or [],
        "windows": [
            {
                "index": w.index,
                "in_sample_start": w.in_sample_start,
                "in_sample_end": w.in_sample_end,
                "out_of_sample_start": w.out_of_sample_start,
                "out_of_sample_end": w.out_of_sample_end,
                "best_params": w.best_params,
                "in_sample_metrics": w.in_sample_metrics,
                "out_of_sample_metrics": w.out_of_sample_metrics,
                "in_sample_trades": w.in_sample_trades,
                "out_of_sample_trades": w.out_of_sample_trades,
                "flag": w.flag,
            }
            for w in windows
        ],
        "report_html_url": (
            f"/backtests/walk-forward/{run.pk}/report.html" if run.report_html else None
        ),
    }


@walk_forward_router.get("", response=responses(200, Page(WalkForwardOut), 422))
def walk_forward_list(request: HttpRequest, filters: Query[WalkForwardFilters]) -> dict[str, Any]:
    """Walk-forward runs, newest first."""
    require_role(request, Role.VIEWER)
    queryset = selectors.walk_forward_runs_list(
        strategy_id=filters.strategy_id, status=filters.status
    )
    return paginate(queryset, filters, lambda rows: [walk_forward_out(r) for r in rows])


@walk_forward_router.post("", response=responses(202, Data(Accepted), 403, 404, 409, 422))
def walk_forward_start(
    request: HttpRequest,
    response: HttpResponse,
    payload: WalkForwardIn,
    idempotency_key: str | None = idempotency_header(),
) -> Status[Any]:
    """Check and queue a walk-forward run (windows fan out over the Celery workers)."""

    principal = require_role(request, Role.OPERATOR)
    strategy = strategy_by_id(strategy_id=payload.strategy_id)
    version = strategy_version_get(strategy=strategy)
    wf_config = WalkForwardConfig(
        in_sample_days=payload.in_sample_days,
        out_of_sample_days=payload.out_of_sample_days,
        step_days=payload.step_days,
        window_type=payload.window_type,  # type: ignore[arg-type]
        parameter_grid=payload.parameter_grid,
        objective=payload.objective,  # type: ignore[arg-type]
        min_trades_required=payload.min_trades_required,
    )
    user = acting_user(principal)
    once = walk_forward_run_start(
        strategy_version=version,
        wf_config=wf_config,
        backtest_config=payload.backtest_config(),
        symbols=payload.symbol_override(),
        requested_by=user,
        idempotency_key=idempotency_scope(user.pk, idempotency_key),
    )
    mark_replayed(response, once)
    return accepted(response, f"/v1/walk-forward/{once.value.pk}", once.value)


@walk_forward_router.get("/{run_id}", response=responses(200, Data(WalkForwardDetailOut), 404, 422))
def walk_forward_get(request: HttpRequest, run_id: Id) -> dict[str, Any]:
    """One walk-forward run: progress, windows with their best parameters, the stitched
    out-of-sample result."""
    require_role(request, Role.VIEWER)
    return {"data": walk_forward_detail_out(selectors.walk_forward_run_get(run_id=run_id))}


@walk_forward_router.post(
    "/{run_id}/cancel", response=responses(200, Data(WalkForwardOut), 403, 404, 409, 422)
)
def walk_forward_cancel(request: HttpRequest, run_id: Id) -> dict[str, Any]:

    require_role(request, Role.OPERATOR)
    run = walk_forward_run_cancel(run=selectors.walk_forward_run_get(run_id=run_id))
    return {"data": walk_forward_out(run)}
