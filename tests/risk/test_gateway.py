"""The gateway's reads from the database: every limit and state it checks comes from the rows
committed before the check (no caching), read by hand-written statements that must answer
what the ORM answers, on PostgreSQL and on SQLite (the last test runs this module there)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from quant.clock import ManualClock
from quant.risk.limits import RiskLimits, StrategyLimits
from quant.risk.values import KillSwitchView, RiskVerdict
from research.models import Strategy
from risk.gateway import market_view, order_risk_check
from risk.models import GLOBAL, KillSwitchState, RiskLimitSet, StrategyRiskLimit
from risk.reads import (
    GatewayReads,
    account_read,
    book_read,
    gateway_reads,
    positions_of,
    risk_overrides,
)
from risk.selectors import killswitch_global
from risk.services import killswitch_activate
from tests.trading.factories import account, flat_prices, paper_strategy
from trading.models import AccountSnapshot, Order, Position, SafeMode, StrategyRuntime
from trading.services.orders import order_create

pytestmark = pytest.mark.django_db

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
NOW = timezone.now().replace(hour=15, minute=0, second=0, microsecond=0)  # mid-session


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def strategy() -> Strategy:
    flat_prices("GWA", price="100", volume=5_000_000, end=NOW)
    return paper_strategy("gateway_reads", symbols=("GWA",))


def snapshot(equity: str, at: datetime, mode: str = "paper") -> AccountSnapshot:
    return AccountSnapshot.objects.create(
        mode=mode, broker="test", equity=D(equity), cash=D(equity), buying_power=D(equity), ts=at
    )


def check(
    strategy: Strategy,
    clock: ManualClock,
    *,
    side: str = "buy",
    quantity: str = "10",
    opening: bool = True,
) -> RiskVerdict:
    order: Order = order_create(
        strategy=strategy,
        mode="paper",
        broker="simulated",
        symbol="GWA",
        side=side,
        quantity=D(quantity),
        opening=opening,
        clock=clock,
    )
    with transaction.atomic():
        return order_risk_check(order, clock)


# --- the reads answer what the ORM answers ---------------------------------------------------


def test_reads_of_an_empty_database_are_the_defaults(strategy: Strategy) -> None:
    reads = GatewayReads.read(strategy.pk, "paper", NOW)

    assert reads.safe_mode_reason is None and reads.runtime is None and reads.account is None
    assert reads.limits == RiskLimits() and reads.strategy_limits == StrategyLimits()
    version = strategy.current_version
    assert version is not None and reads.version == (version.pk, version.content_hash)


def test_reads_match_the_orm(strategy: Strategy) -> None:
    session = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=UTC)
    snapshot("120000", session - timedelta(days=2))  # the peak, before this session
    snapshot("101000.25", session + timedelta(minutes=1))  # the session's first
    snapshot("99000.5", NOW)  # the latest
    snapshot("1", NOW, mode="live")  # another mode: not read
    SafeMode.objects.create(mode="paper", active=True, reason="AAPL differs")
    runtime = StrategyRuntime.objects.create(
        strategy=strategy,
        mode="paper",
        paused_reason="drawdown",
        paused_until=NOW + timedelta(hours=1),
        high_water_mark=D("1234.5"),
        session_date=NOW.date(),
        session_start_equity=D("1000.125"),
    )
    RiskLimitSet.objects.update(is_active=False)
    RiskLimitSet.objects.create(max_open_positions=7, max_notional_per_trade=D("1234.56"))
    StrategyRiskLimit.objects.create(strategy=strategy, min_liquidity=D("750000"))

    reads = GatewayReads.read(strategy.pk, "paper", NOW)

    assert reads.safe_mode_reason == "AAPL differs"
    assert reads.runtime is not None and reads.runtime.pk == runtime.pk
    for name in ("paused_reason", "paused_until", "high_water_mark", "session_date"):
        assert getattr(reads.runtime, name) == getattr(runtime, name), name
    assert reads.runtime.session_start_equity == D("1000.125")
    assert reads.account is not None
    assert (reads.account.equity, reads.account.cash) == (D("99000.5"), D("99000.5"))
    assert reads.account.opening == D("101000.25")
    assert (
        reads.account.peak
        == AccountSnapshot.objects.filter(mode="paper").aggregate(m=Max("equity"))["m"]
        == D("120000")
    )
    assert reads.limits == RiskLimits(max_open_positions=7, max_notional_per_trade=D("1234.56"))
    assert reads.strategy_limits == StrategyLimits(min_liquidity=D("750000"))
    assert all(isinstance(v, Decimal) for v in reads.limits.as_dict().values() if v != 7)


def test_safe_mode_off_reads_as_none(strategy: Strategy) -> None:
    SafeMode.objects.create(mode="paper", active=False, reason="was on")

    assert GatewayReads.read(strategy.pk, "paper", NOW).safe_mode_reason is None


def test_account_without_a_snapshot_this_session_has_no_opening() -> None:
    snapshot("100", NOW - timedelta(days=3))

    read = account_read("paper", NOW)

    assert read is not None and read.opening is None and read.peak == D("100")
    assert account_read("live", NOW) is None


def test_positions_of_a_mode_are_the_orm_rows(strategy: Strategy) -> None:
    other = paper_strategy("gateway_other", symbols=("GWA",))
    Position.objects.create(
        strategy=strategy, mode="paper", symbol="GWA", quantity=D("10.5"), avg_price=D("99.125")
    )
    Position.objects.create(
        strategy=other, mode="paper", symbol="GWA", quantity=D("-3"), realized_pnl=D("-7.25")
    )
    Position.objects.create(strategy=strategy, mode="live", symbol="GWA", quantity=D("1"))

    read = {(p.strategy_id, p.symbol): p for p in positions_of("paper")}
    orm = {(p.strategy_id, p.symbol): p for p in Position.objects.filter(mode="paper")}

    assert read.keys() == orm.keys()
    for key, position in orm.items():
        for name in ("pk", "quantity", "avg_price", "realized_pnl", "mode"):
            assert getattr(read[key], name) == getattr(position, name), name


def test_market_view_averages_the_last_twenty_sessions_up_to_now() -> None:
    flat_prices("GWB", price="10", volume=1000, days=10, end=NOW - timedelta(days=20))
    flat_prices("GWB", price="20.5", volume=3000, days=20, end=NOW)
    flat_prices("GWB", price="99", volume=1, days=2, end=NOW + timedelta(days=3))  # future

    view = market_view("GWB", NOW)

    assert view.average_daily_volume == D(3000)
    assert view.average_daily_dollar_volume == D("61500")
    assert market_view("NONE", NOW).average_daily_volume is None


def test_the_book_is_the_three_reads_in_one(strategy: Strategy) -> None:
    from marketdata.prices import last_prices
    from risk.reads import daily_bars

    flat_prices("GWC", price="12.345678", volume=777, days=25, end=NOW)
    flat_prices("GWD", price="50", days=3, end=NOW)  # held, but only flat: no price needed
    Position.objects.create(
        strategy=strategy, mode="paper", symbol="GWC", quantity=D("4"), avg_price=D("12")
    )
    Position.objects.create(strategy=strategy, mode="paper", symbol="GWD", quantity=D("0"))
    Position.objects.create(strategy=strategy, mode="live", symbol="GWD", quantity=D("9"))

    book = book_read("paper", "GWA", NOW)

    assert sorted(p.pk for p in book.positions) == sorted(p.pk for p in positions_of("paper"))
    assert book.daily == daily_bars("GWA", NOW) and len(book.daily) == 20
    assert book.prices == last_prices(["GWA", "GWC"]) == {"GWA": D("100"), "GWC": D("12.345678")}
    assert book_read("paper", "NONE", NOW).prices == {"GWC": D("12.345678")}
    assert book_read("live", "NONE", NOW).daily == []


def test_risk_overrides_are_read_once_per_version(strategy: Strategy) -> None:
    version = strategy.current_version
    assert version is not None
    risk_overrides.cache_clear()

    first = risk_overrides(version.pk, version.content_hash)
    again = risk_overrides(version.pk, version.content_hash)

    assert first is again and risk_overrides.cache_info().hits == 1


# --- the gateway acts on what it read --------------------------------------------------------


def test_an_approval_with_the_default_limits(strategy: Strategy, clock: ManualClock) -> None:
    account()

    verdict = check(strategy, clock)

    assert verdict.approved, verdict.reason
    assert verdict.reference_price == D("100")


def test_no_snapshot_refuses(strategy: Strategy, clock: ManualClock) -> None:
    verdict = check(strategy, clock)

    assert not verdict.approved and verdict.check == "account"


def test_safe_mode_refuses_entries_and_lets_exits_through(
    strategy: Strategy, clock: ManualClock
) -> None:
    account()
    Position.objects.create(
        strategy=strategy, mode="paper", symbol="GWA", quantity=D("10"), avg_price=D("100")
    )
    SafeMode.objects.create(mode="paper", active=True, reason="SPY: ours 10, broker 0")

    entry = check(strategy, clock)
    exit_ = check(strategy, clock, side="sell", opening=False)

    assert not entry.approved and entry.check == "safe_mode"
    assert entry.reason.endswith("(SPY: ours 10, broker 0)")
    assert exit_.approved, exit_.reason


def test_a_paused_strategy_waits_until_the_pause_ends(
    strategy: Strategy, clock: ManualClock
) -> None:
    account()
    StrategyRuntime.objects.create(
        strategy=strategy,
        mode="paper",
        paused_at=NOW,
        paused_check="strategy_daily_loss",
        paused_reason="daily loss",
        paused_until=NOW + timedelta(hours=1),
    )

    paused = check(strategy, clock)
    clock.advance(timedelta(hours=1, seconds=1))
    later = check(strategy, clock)

    until = f"{NOW + timedelta(hours=1):%Y-%m-%d %H:%M}"
    assert not paused.approved and paused.check == "strategy_paused"
    assert paused.reason == f"Strategy paused until {until} UTC: daily loss"
    assert later.approved, later.reason


def test_a_limit_change_applies_to_the_next_check(strategy: Strategy, clock: ManualClock) -> None:
    account()
    assert check(strategy, clock, quantity="20").approved

    RiskLimitSet.objects.update(is_active=False)
    RiskLimitSet.objects.create(max_notional_per_trade=D("1500"))
    tightened = check(strategy, clock, quantity="20")

    assert not tightened.approved and tightened.check == "max_notional"
    assert tightened.reason == "Notional exceeds limit: $2,000.00 > $1,500.00"


def test_a_strategy_limit_from_the_database_applies(strategy: Strategy, clock: ManualClock) -> None:
    account()
    StrategyRiskLimit.objects.create(strategy=strategy, min_liquidity=D("600000000"))

    verdict = check(strategy, clock)

    assert not verdict.approved and verdict.check == "min_liquidity"


def test_the_versions_risk_section_tightens(clock: ManualClock) -> None:
    flat_prices("GWA", price="100", end=NOW)
    strategy = paper_strategy(
        "gateway_tight", symbols=("GWA",), risk={"max_position_notional": 500}
    )
    account()

    verdict = check(strategy, clock)

    assert not verdict.approved and verdict.check == "max_notional"


def test_daily_drawdown_is_measured_from_the_sessions_first_snapshot(
    strategy: Strategy, clock: ManualClock
) -> None:
    session = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=UTC)
    snapshot("200000", session - timedelta(days=1))  # yesterday's: not this session's
    snapshot("100000", session + timedelta(seconds=1))
    snapshot("96000", NOW)  # -4% in the session, -52% from the peak

    verdict = check(strategy, clock)

    assert not verdict.approved and verdict.check == "daily_drawdown", verdict.reason
    assert verdict.reason.startswith("Daily drawdown exceeded: 4.00% > 3.00%")


def test_total_drawdown_is_measured_from_the_peak(strategy: Strategy, clock: ManualClock) -> None:
    snapshot("120000", NOW - timedelta(days=5))
    snapshot("100000", NOW)  # the session's first and latest: no daily drawdown

    verdict = check(strategy, clock)

    assert not verdict.approved and verdict.check == "total_drawdown", verdict.reason


def test_the_kill_switches_are_read_with_the_rest(strategy: Strategy, clock: ManualClock) -> None:
    account()
    assert GatewayReads.read(strategy.pk, "paper", NOW).kill_switch == KillSwitchView()

    killswitch_activate(scope=strategy, reason="bad fills")
    reads = GatewayReads.read(strategy.pk, "paper", NOW)
    assert reads.kill_switch == KillSwitchView(strategy_active=True, strategy_reason="bad fills")
    assert GatewayReads.read(None, "paper", NOW).kill_switch == KillSwitchView()
    verdict = check(strategy, clock)
    assert not verdict.approved and verdict.reason.startswith("Kill switch active")

    killswitch_activate(reason="halt all")  # the global one is reported first
    reads = GatewayReads.read(strategy.pk, "paper", NOW)
    assert reads.kill_switch == KillSwitchView(global_active=True, global_reason="halt all")


def test_the_kill_switch_is_reported_before_missing_prices_or_account(
    strategy: Strategy, clock: ManualClock
) -> None:
    from marketdata.models import Bar

    Bar.objects.all().delete()  # no last price, and no account snapshot either
    assert check(strategy, clock).reason.startswith("No last price for GWA")
    killswitch_activate(reason="halt all")
    verdict = check(strategy, clock)
    assert (verdict.approved, verdict.check) == (False, "kill_switch")
    assert verdict.reason == "Kill switch active (global): halt all"


def test_a_missing_global_kill_switch_row_is_recreated(
    strategy: Strategy, clock: ManualClock
) -> None:
    account()
    KillSwitchState.objects.filter(scope=GLOBAL).delete()
    assert GatewayReads.read(strategy.pk, "paper", NOW).kill_switch is None

    assert check(strategy, clock).approved
    assert KillSwitchState.objects.filter(scope=GLOBAL, active=False).count() == 1


@pytest.mark.django_db(transaction=True)
def test_reads_outside_a_transaction_are_a_mistake(strategy: Strategy) -> None:
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        gateway_reads(strategy.pk, "paper", "GWA", NOW)


@pytest.mark.django_db(transaction=True)
def test_a_check_that_approves_writes_nothing(strategy: Strategy, clock: ManualClock) -> None:
    """The kill-switch lock is advisory: no transaction id, so COMMIT flushes no WAL."""
    if connection.vendor != "postgresql":
        pytest.skip("transaction ids are PostgreSQL's")
    account()
    killswitch_global()  # the migration's row, gone after the last transactional test's flush
    order = order_create(
        strategy=strategy,
        mode="paper",
        broker="simulated",
        symbol="GWA",
        side="buy",
        quantity=D("10"),
        opening=True,
        clock=clock,
    )
    with transaction.atomic(), connection.cursor() as cursor:
        verdict = order_risk_check(order, clock)
        cursor.execute("SELECT pg_current_xact_id_if_assigned()")
        xid = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' "
            "AND pid = pg_backend_pid()"
        )
        shared = cursor.fetchone()[0]

    assert verdict.approved, verdict.reason
    assert xid is None
    assert shared == 1  # the kill-switch lock, held until the commit


# --- on SQLite too ---------------------------------------------------------------------------


@pytest.mark.skipif(
    os.environ.get("GATEWAY_READS_ON_SQLITE") == "1", reason="already the SQLite run"
)
def test_this_module_passes_on_sqlite(tmp_path: Path) -> None:
    """The hand-written statements and their value conversions on the embedded database."""
    if connection.vendor == "sqlite":
        pytest.skip("this run is on SQLite already")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TEST_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'gateway.sqlite3'}",
        GATEWAY_READS_ON_SQLITE="1",
        VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
