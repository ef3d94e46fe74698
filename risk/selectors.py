"""Reads of the risk app: the limits in force and the kill-switch state.

Every answer comes from the database, so a new process (a worker, a restarted web server) sees
exactly what the last committed transaction left.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Q, QuerySet

from quant.errors import NotFoundError
from quant.risk.limits import RiskLimits, StrategyLimits, effective_limits
from quant.risk.state import MODES_ALLOWED, TRADING_MODES, TradingState
from quant.risk.values import KillSwitchView
from research.models import Strategy, StrategyMode
from risk.locks import kill_switch_lock
from risk.models import (
    GLOBAL,
    AdminCode,
    ChangeStatus,
    KillSwitchState,
    RiskLimitChange,
    RiskLimitSet,
    StrategyRiskLimit,
)
from risk.reads import risk_overrides
from trading.models import SafeMode, StrategyRuntime
from trading.services.pauses import pause_of


def limits_current() -> RiskLimits:
    """The active platform limits (the spec's defaults when no row is active)."""
    row = RiskLimitSet.objects.filter(is_active=True).first()
    return row.as_limits() if row is not None else RiskLimits()


def strategy_limits_for(*, strategy: Strategy) -> StrategyLimits:
    """The strategy's stored limits, or the defaults when it has none."""
    row = StrategyRiskLimit.objects.filter(strategy=strategy).first()
    return row.as_limits() if row is not None else StrategyLimits()


def limits_effective_for(*, strategy: Strategy) -> tuple[RiskLimits, StrategyLimits]:
    """The limits the strategy trades under: stored limits tightened by its config's ``risk:``."""

    version = strategy.current_version
    overrides = risk_overrides(version.pk, version.content_hash) if version is not None else None
    return effective_limits(limits_current(), strategy_limits_for(strategy=strategy), overrides)


def limit_changes_pending() -> QuerySet[RiskLimitChange]:
    return RiskLimitChange.objects.filter(status=ChangeStatus.PENDING).select_related(
        "strategy", "requested_by"
    )


def scope_strategy(*, scope: str | int | Strategy) -> Strategy | None:
    """None for "global"; otherwise the strategy named by id or name (NotFoundError if none)."""
    if isinstance(scope, Strategy):
        return scope
    text = str(scope).strip()
    if text.lower() == GLOBAL:
        return None
    strategy = Strategy.objects.filter(pk=int(text)).first() if text.isdigit() else None
    strategy = strategy or Strategy.objects.filter(name=text).first()
    if strategy is None:
        raise NotFoundError(
            f"scope: no strategy {text!r}; give 'global', a strategy id or a strategy name",
            details={"scope": text},
        )
    return strategy


def killswitch_get(*, scope: str | int | Strategy = GLOBAL) -> KillSwitchState | None:
    """The kill-switch state of one scope (None for a strategy whose switch was never used)."""
    strategy = scope_strategy(scope=scope)
    if strategy is None:
        return killswitch_global()
    return KillSwitchState.objects.filter(strategy=strategy).select_related("strategy").first()


def killswitch_global() -> KillSwitchState:
    """The global kill-switch row (created by a migration; recreated if it ever went missing)."""
    state, _ = KillSwitchState.objects.get_or_create(scope=GLOBAL)
    return state


def killswitch_status() -> list[KillSwitchState]:
    """Every kill-switch state: the global one first, then the strategies' by name."""
    killswitch_global()
    states = KillSwitchState.objects.select_related("strategy", "activated_by", "deactivated_by")
    return sorted(states, key=lambda s: (s.scope != GLOBAL, s.strategy.name if s.strategy else ""))


def kill_switch_blocking(*, strategy_id: int | None, lock: bool = False) -> KillSwitchState | None:
    """The active kill switch that blocks orders of ``strategy_id`` (the global one first).

    With ``lock=True`` (inside ``transaction.atomic()``) this first takes the kill-switch lock
    shared, on PostgreSQL. Activation and deactivation hold it exclusively until they commit,
    so a check running meanwhile waits and then sees the switch (its reads are later
    statements: READ COMMITTED takes their snapshot after the lock is granted); an activation
    starting after the check waits for the check's transaction to end. The lock is advisory:
    the check writes nothing, so its COMMIT flushes no WAL. SQLite allows one writer at a
    time, so a plain read is enough there. The gateway sends the same lock ahead of its own
    reads (``risk.reads.gateway_reads``).
    """
    if lock:
        if not connection.in_atomic_block:
            raise RuntimeError(
                "kill_switch_blocking(lock=True) must run inside transaction.atomic()"
            )
        kill_switch_lock(shared=True)
        killswitch_global()  # recreated if it ever went missing
    scope = Q(scope=GLOBAL) if strategy_id is None else Q(scope=GLOBAL) | Q(strategy_id=strategy_id)
    states = list(KillSwitchState.objects.filter(scope, active=True).select_related("strategy"))
    states.sort(key=lambda s: s.scope != GLOBAL)
    return states[0] if states else None


def admin_code_is_set() -> bool:
    return AdminCode.objects.exists()


def trading_states(*, now: datetime, strategy_id: int | None = None) -> list[TradingState]:
    """The trading state of every active strategy (or one) in each mode it may trade in, and
    in any mode where it is paused: four reads whatever the number of strategies. The same
    ``TradingState`` the gateway decides with (``risk.gateway.trading_state`` for one)."""

    strategies = Strategy.objects.filter(is_active=True).order_by("name")
    if strategy_id is not None:
        strategies = Strategy.objects.filter(pk=strategy_id)
    switches = {
        s.strategy_id: s
        for s in KillSwitchState.objects.filter(active=True).only("scope", "strategy_id", "reason")
    }
    glob = switches.get(None)  # the global row has no strategy
    safe = dict(SafeMode.objects.filter(active=True).values_list("mode", "reason"))
    pauses = {
        (r.strategy_id, r.mode): pause
        for r in StrategyRuntime.objects.filter(paused_at__isnull=False)
        if (pause := pause_of(r, now)) is not None
    }
    states: list[TradingState] = []
    for strategy in strategies:
        own = switches.get(strategy.pk)
        view = KillSwitchView(
            global_active=glob is not None,
            global_reason=glob.reason if glob else "",
            strategy_active=own is not None,
            strategy_reason=own.reason if own else "",
        )
        modes = [
            m
            for m in TRADING_MODES
            if m in MODES_ALLOWED[strategy.mode] or (strategy.pk, m) in pauses
        ]
        states.extend(
            TradingState(
                strategy_id=strategy.pk,
                strategy_name=strategy.name,
                strategy_mode=strategy.mode,
                order_mode=mode,
                kill_switch=view,
                safe_mode_reason=safe.get(mode),
                pause=pauses.get((strategy.pk, mode)),
            )
            for mode in modes or [StrategyMode.PAPER.value]  # research: shown as gated
        )
    return states
