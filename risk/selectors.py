"""Reads of the risk app: the limits in force and the kill-switch state.

Every answer comes from the database, so a new process (a worker, a restarted web server) sees
exactly what the last committed transaction left.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet

from quant.core.errors import NotFoundError
from quant.db import prepared
from quant.models import Strategy
from risk.limits import RiskLimits, StrategyLimits, effective_limits
from risk.models import (
    GLOBAL,
    AdminCode,
    ChangeStatus,
    KillSwitchState,
    RiskLimitChange,
    RiskLimitSet,
    StrategyRiskLimit,
)


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
    from risk.reads import risk_overrides

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

    With ``lock=True`` (inside ``transaction.atomic()``) this takes a shared lock on the global
    row and the strategy's row on PostgreSQL. Activation holds an exclusive lock on the global
    row until it commits, so a check running meanwhile waits and then sees the switch; an
    activation starting after the check waits for the check's transaction to end. SQLite
    allows one writer at a time, so a plain read is enough there.
    """
    if lock and not connection.in_atomic_block:
        raise RuntimeError("kill_switch_blocking(lock=True) must run inside transaction.atomic()")
    scope = Q(scope=GLOBAL) if strategy_id is None else Q(scope=GLOBAL) | Q(strategy_id=strategy_id)
    if lock and connection.vendor == "postgresql":
        active = _share_locked_active(strategy_id)
        if active is None:  # the global row went missing: recreate it, lock again
            killswitch_global()
            active = _share_locked_active(strategy_id)
        if not active:
            return None
        scope = Q(pk__in=active)  # the rows just locked, not a second read of the others
    elif lock:
        killswitch_global()
    states = list(KillSwitchState.objects.filter(scope, active=True).select_related("strategy"))
    states.sort(key=lambda s: s.scope != GLOBAL)
    return states[0] if states else None


def _share_locked_active(strategy_id: int | None) -> list[int] | None:
    """FOR SHARE on the global row, then on the strategy's (the order every writer locks in:
    rows are locked as the sorted result is read), in one statement; the ids of the active
    ones, or None when there is no global row."""
    table = connection.ops.quote_name(KillSwitchState._meta.db_table)
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            f"SELECT id, scope, active FROM {table} WHERE scope = %s OR strategy_id = %s "
            "ORDER BY (scope <> %s), id FOR SHARE",
            [GLOBAL, strategy_id, GLOBAL],
        )
        rows = cursor.fetchall()
    if not any(scope == GLOBAL for _, scope, _ in rows):
        return None
    return [pk for pk, _, active in rows if active]


def admin_code_is_set() -> bool:
    return AdminCode.objects.exists()
