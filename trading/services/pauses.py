"""Strategy pauses (spec section 6, strategy-level limits): a breached drawdown limit pauses
the strategy until an operator lifts it; a breached daily-loss limit pauses it for the
session (until the next session opens). A paused strategy may still reduce its positions.

The risk gateway stores the pause in the transaction that rejects the order
(``strategy_pause``); ``StrategyRuntime`` holds the current pause and ``StrategyPauseEvent``
the history. The trading state (``quant.risk.state``) reads it through ``pause_of``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from monitoring.services import alert_raise_safely
from quant.calendar import MarketCalendar
from quant.errors import ConflictError, ValidationError
from quant.risk.state import PAUSE_CHECKS, STRATEGY_DAILY_LOSS, STRATEGY_DRAWDOWN, Pause
from research.models import Strategy
from trading.models import PauseAction, StrategyPauseEvent, StrategyRuntime

log = structlog.get_logger(__name__)


def pause_of(runtime: StrategyRuntime | None, now: datetime) -> Pause | None:
    """The runtime's pause while it lasts (None when none, or a session pause that ended)."""
    if runtime is None or runtime.paused_at is None:
        return None
    pause = Pause(
        check=runtime.paused_check,
        reason=runtime.paused_reason,
        since=runtime.paused_at,
        until=runtime.paused_until,
    )
    return pause if pause.active(now) else None


def strategy_pause(*, strategy_id: int, mode: str, check: str, reason: str, now: datetime) -> None:
    """Store the pause a breached strategy limit announces (inside the gateway's transaction);
    an active pause is kept as it is."""
    if check not in PAUSE_CHECKS:
        raise ValueError(f"{check} does not pause a strategy")
    until = MarketCalendar().next_open(now) if check == STRATEGY_DAILY_LOSS else None
    runtime, _ = StrategyRuntime.objects.get_or_create(strategy_id=strategy_id, mode=mode)
    runtime = StrategyRuntime.objects.select_for_update().get(pk=runtime.pk)
    if pause_of(runtime, now) is not None:
        return
    runtime.paused_at, runtime.paused_until = now, until
    runtime.paused_check, runtime.paused_reason = check, reason
    runtime.save(update_fields=["paused_at", "paused_until", "paused_check", "paused_reason"])
    StrategyPauseEvent.objects.create(
        strategy_id=strategy_id,
        mode=mode,
        action=PauseAction.PAUSED,
        limit=check,
        reason=reason,
        until=until,
        at=now,
    )
    pause = pause_of(runtime, now)
    assert pause is not None
    log.warning("risk.strategy_paused", strategy_id=strategy_id, mode=mode, check=check)
    transaction.on_commit(lambda: _alert(strategy_id, mode, pause))


def _alert(strategy_id: int, mode: str, pause: Pause) -> None:
    name = Strategy.objects.filter(pk=strategy_id).values_list("name", flat=True).first()
    alert_raise_safely(
        severity="warning",
        source="risk.pause",
        message=f"Strategy {name} paused in {mode} mode {pause.lasts}: {pause.reason}",
        key=f"strategy.paused.{strategy_id}.{mode}",
        details={"check": pause.check, "until": pause.until.isoformat() if pause.until else None},
    )


def strategy_pause_lift(
    *, strategy: Strategy, mode: str, user: Any, reason: str, now: datetime | None = None
) -> StrategyRuntime:
    """Lift a strategy's pause (an operator's decision, with a reason). The breached measure
    starts afresh from now: the drawdown from today's equity, the session's loss from zero,
    so the next entry is not paused again at once by the same loss."""
    now = now or timezone.now()
    if not reason.strip():
        raise ValidationError("reason: say why the pause is lifted")
    with transaction.atomic():
        runtime = (
            StrategyRuntime.objects.select_for_update().filter(strategy=strategy, mode=mode).first()
        )
        pause = pause_of(runtime, now)
        if runtime is None or pause is None:
            raise ConflictError(f"strategy {strategy.name} is not paused in {mode} mode")
        fields = {"paused_at": None, "paused_until": None, "paused_check": "", "paused_reason": ""}
        if pause.check == STRATEGY_DRAWDOWN:
            fields["high_water_mark"] = None
        else:
            fields["session_start_equity"] = None
        for name, value in fields.items():
            setattr(runtime, name, value)
        runtime.save(update_fields=list(fields))
        StrategyPauseEvent.objects.create(
            strategy=strategy,
            mode=mode,
            action=PauseAction.LIFTED,
            limit=pause.check,
            reason=reason.strip(),
            user=user if getattr(user, "pk", None) else None,
            at=now,
        )
    log.warning(
        "risk.strategy_pause_lifted",
        strategy=strategy.name,
        mode=mode,
        user=getattr(user, "username", None),
    )
    return runtime
