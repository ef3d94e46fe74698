"""Writes of the risk app: two-person limit changes and the kill switch.

Limit changes (spec "Human-in-the-Loop Checkpoints" 4): a change is requested, then approved
or rejected by a different user; only an approval applies it, atomically. The kill switch
(spec section 6): activation takes the kill-switch lock exclusively, writes the
state and an audit event, and after the commit raises a CRITICAL alert and sends
``kill_switch_activated`` so the trading app cancels, halts and maybe flattens. Deactivation
needs the admin code, checked against its stored hash before any lock is taken, with a back-off
and an alert for repeated wrong codes; a refusal is audited too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from common.auth import RateLimited
from monitoring.services import alert_raise_safely
from quant.errors import ConflictError, PermissionDeniedError, ValidationError
from quant.risk.health import CircuitBreaker, DrawdownReading, EquityPoint
from quant.risk.limits import (
    PLATFORM_FIELDS,
    STRATEGY_FIELDS,
    RiskLimits,
    StrategyLimits,
    limit_value,
)
from quant.strategies.registry import did_you_mean
from research.models import Strategy
from risk import selectors
from risk.approvals import four_eyes
from risk.locks import kill_switch_lock
from risk.models import (
    GLOBAL,
    AdminCode,
    ChangeScope,
    ChangeStatus,
    KillSwitchAction,
    KillSwitchEvent,
    KillSwitchMode,
    KillSwitchScope,
    KillSwitchSource,
    KillSwitchState,
    RiskLimitChange,
    RiskLimitSet,
    StrategyRiskLimit,
)
from risk.signals import kill_switch_activated

log = structlog.get_logger(__name__)

User = AbstractBaseUser | AnonymousUser | None
ADMIN_CODE_MIN_LENGTH = 12


def _user(user: User) -> Any:
    """The stored user, or None for anonymous callers (the system, a management command)."""
    return user if getattr(user, "pk", None) else None


# --- limit changes --------------------------------------------------------------------------


def _suggest(word: str, names: Mapping[str, Any]) -> str:
    """A did-you-mean hint; a prefix counts ("max_risk" -> "max_risk_per_trade_pct")."""
    prefixed = [n for n in names if n.startswith(word)]
    return f" (did you mean {prefixed[0]!r}?)" if len(prefixed) == 1 else did_you_mean(word, names)


def _clean_values(scope: str, values: Mapping[str, Any]) -> dict[str, Decimal | int]:
    specs = PLATFORM_FIELDS if scope == ChangeScope.PLATFORM else STRATEGY_FIELDS
    if not isinstance(values, Mapping) or not values:
        raise ValidationError("values: name at least one limit and its new value")
    cleaned: dict[str, Decimal | int] = {}
    for name, raw in values.items():
        if name not in specs:
            raise ValidationError(
                f"values: unknown {scope} limit {name!r}{_suggest(str(name), specs)}; "
                f"known: {', '.join(specs)}",
                details={"field": name},
            )
        cleaned[name] = limit_value(name, raw, specs[name])
    return cleaned


def _current(scope: str, strategy: Strategy | None) -> RiskLimits | StrategyLimits:
    if scope == ChangeScope.PLATFORM:
        return selectors.limits_current()
    assert strategy is not None
    return selectors.strategy_limits_for(strategy=strategy)


def _merged(base: RiskLimits | StrategyLimits, changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base.as_dict(), **changes}
    type(base)(**merged)  # the whole set must be valid, not only each value
    return merged


def _json(values: Mapping[str, Decimal | int]) -> dict[str, str | int]:
    """JSON-safe values: counts as ints, decimals as plain strings ("25000", not "2.5E+4")."""
    return {k: v if isinstance(v, int) else format(v.normalize(), "f") for k, v in values.items()}


def limit_change_request(
    *,
    user: User,
    scope: str,
    strategy: Strategy | None = None,
    values: Mapping[str, Any],
    reason: str,
) -> RiskLimitChange:
    """Ask for new limits; a pending request for the same limits is superseded by this one."""
    requester = _user(user)
    if requester is None:
        raise ValidationError("a limit change needs a signed-in user")
    if scope not in ChangeScope.values:
        raise ValidationError(f"scope: use 'platform' or 'strategy', not {scope!r}")
    if (scope == ChangeScope.STRATEGY) != (strategy is not None):
        raise ValidationError("strategy: give a strategy for strategy limits, none for platform")
    if not reason.strip():
        raise ValidationError("reason: say why the limits should change")
    cleaned = _clean_values(scope, values)
    current = _current(scope, strategy)
    _merged(current, cleaned)
    if all(getattr(current, k) == v for k, v in cleaned.items()):
        raise ValidationError("values: these are the current limits; nothing would change")
    now = timezone.now()
    with transaction.atomic():
        pending = RiskLimitChange.objects.select_for_update().filter(
            scope=scope, strategy=strategy, status=ChangeStatus.PENDING
        )
        superseded = [c.pk for c in pending]
        pending.update(status=ChangeStatus.SUPERSEDED, decided_at=now)
        change = RiskLimitChange.objects.create(
            scope=scope,
            strategy=strategy,
            values=_json(cleaned),
            previous_values=_json({k: getattr(current, k) for k in cleaned}),
            reason=reason.strip(),
            requested_by=requester,
            requested_at=now,
        )
    log.info("risk.limit_change.requested", change_id=change.pk, superseded=superseded)
    return change


def _decide(change: RiskLimitChange, user: User, status: ChangeStatus) -> RiskLimitChange:
    locked = RiskLimitChange.objects.select_for_update().get(pk=change.pk)
    if locked.status != ChangeStatus.PENDING:
        raise ConflictError(f"limit change #{locked.pk} is {locked.status}, not pending")
    decider = four_eyes(requested_by_id=locked.requested_by_id, decider=user)
    locked.status, locked.decided_by, locked.decided_at = status, decider, timezone.now()
    return locked


def limit_change_approve(*, change: RiskLimitChange, user: User, note: str = "") -> RiskLimitChange:
    """Approve and apply a pending change in one transaction (the requester may not)."""
    with transaction.atomic():
        locked = _decide(change, user, ChangeStatus.APPROVED)
        locked.decision_note = note
        locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        _apply(locked)
    log.info("risk.limit_change.approved", change_id=locked.pk, values=locked.values)
    return locked


def limit_change_reject(*, change: RiskLimitChange, user: User, note: str = "") -> RiskLimitChange:
    with transaction.atomic():
        locked = _decide(change, user, ChangeStatus.REJECTED)
        locked.decision_note = note
        locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    log.info("risk.limit_change.rejected", change_id=locked.pk)
    return locked


def _apply(change: RiskLimitChange) -> None:
    values = _clean_values(change.scope, change.values)
    if change.scope == ChangeScope.PLATFORM:
        active = RiskLimitSet.objects.select_for_update().filter(is_active=True).first()
        merged = _merged(active.as_limits() if active else RiskLimits(), values)
        if active is not None:
            active.is_active = False
            active.save(update_fields=["is_active"])
        RiskLimitSet.objects.create(**merged, is_active=True, change=change)
        return
    strategy = change.strategy
    assert strategy is not None  # a database constraint: strategy scope <=> strategy set
    row = StrategyRiskLimit.objects.select_for_update().filter(strategy=strategy).first()
    merged = _merged(row.as_limits() if row else StrategyLimits(), values)
    if row is None:
        StrategyRiskLimit.objects.create(strategy=strategy, change=change, **merged)
        return
    for name, value in merged.items():
        setattr(row, name, value)
    row.change = change
    row.save()


# --- kill switch ----------------------------------------------------------------------------


def _locked_state(strategy: Strategy | None) -> KillSwitchState:
    """Take the kill-switch lock exclusively (checks in progress finish first, later ones wait
    for this commit), then lock the global row and the scope's own row."""
    kill_switch_lock(shared=False)
    glob = selectors.killswitch_global()
    glob = KillSwitchState.objects.select_for_update().get(pk=glob.pk)
    if strategy is None:
        return glob
    row, _ = KillSwitchState.objects.get_or_create(
        strategy=strategy, defaults={"scope": KillSwitchScope.STRATEGY}
    )
    return (
        KillSwitchState.objects.select_for_update(of=("self",))
        .select_related("strategy")
        .get(pk=row.pk)
    )


def _event(state: KillSwitchState, action: str, *, user: User, **fields: Any) -> KillSwitchEvent:
    return KillSwitchEvent.objects.create(
        scope=state.scope, strategy=state.strategy, action=action, user=_user(user), **fields
    )


def killswitch_activate(
    *,
    scope: str | int | Strategy = GLOBAL,
    reason: str,
    flatten: bool = False,
    user: User = None,
    source: str = KillSwitchSource.MANUAL,
) -> KillSwitchState:
    """Activate (or re-activate: the reason is updated) the kill switch of ``scope``."""
    if not reason or not reason.strip():
        raise ValidationError("reason: say why the kill switch is activated")
    if source not in KillSwitchSource.values:
        raise ValidationError(f"source: use 'manual' or 'auto', not {source!r}")
    strategy = selectors.scope_strategy(scope=scope)
    with transaction.atomic():
        state = _locked_state(strategy)
        repeat = state.active
        if flatten:
            state.mode = KillSwitchMode.FLATTEN
        elif not repeat:
            state.mode = KillSwitchMode.FREEZE  # a repeat never downgrades FLATTEN to FREEZE
        if not repeat:
            state.activated_at, state.activated_by = timezone.now(), _user(user)
            state.source = source
        state.active, state.reason = True, reason.strip()
        state.save()
        _event(
            state,
            KillSwitchAction.ACTIVATED,
            user=user,
            mode=state.mode,
            source=source,
            reason=state.reason,
            details={"repeat": repeat, "flatten_requested": flatten},
        )
        transaction.on_commit(lambda: _after_activation(state.pk, repeat=repeat))
    log.warning("risk.kill_switch.activated", scope=state.label, repeat=repeat, mode=state.mode)
    return state


def _after_activation(state_pk: int, *, repeat: bool) -> None:
    """After the commit: a CRITICAL alert first (a hanging broker must not delay it), then the
    signal; a receiver that fails is reported in a second alert, never raised."""
    state = KillSwitchState.objects.select_related("strategy").get(pk=state_pk)
    flatten = state.mode == KillSwitchMode.FLATTEN
    details = {"scope": state.label, "mode": state.mode, "source": state.source, "repeat": repeat}
    _alert(f"Kill switch activated ({state.label}): {state.reason}", state, details)
    results = kill_switch_activated.send_robust(
        sender=KillSwitchState, state=state, flatten=flatten
    )
    failures = [f"{getattr(r, '__qualname__', r)}: {e!r}" for r, e in results if e is not None]
    if failures:
        log.error("risk.kill_switch.receiver_failed", scope=state.label, failures=failures)
        message = f"Kill switch ({state.label}): the response failed: {'; '.join(failures)}"
        _alert(message, state, {**details, "failures": failures}, key_suffix=":response")


def _alert(
    message: str, state: KillSwitchState, details: dict[str, Any], key_suffix: str = ""
) -> None:
    key = f"kill-switch:{GLOBAL if state.scope == GLOBAL else state.strategy_id}{key_suffix}"
    alert_raise_safely(
        severity="critical", source="risk.kill_switch", message=message, key=key, details=details
    )


def killswitch_deactivate(
    *,
    admin_code: str,
    scope: str | int | Strategy = GLOBAL,
    user: User = None,
    client: str = "",
) -> KillSwitchState:
    """Deactivate with the admin code; a wrong or missing code is refused and audited.

    The code is checked before any lock is taken: a guess (a slow PBKDF2 hash) never holds the
    kill-switch lock that every order's check shares. Wrong codes are counted per user and per
    ``client`` (its address): past ``KILL_SWITCH_CODE_FREE_FAILURES`` each attempt must wait a
    doubling back-off (429, no hash computed) and from ``KILL_SWITCH_CODE_ALERT_AFTER`` every
    failure raises an alert. Call it outside any transaction: the refusal's audit row commits
    before the error is raised.
    """
    strategy = selectors.scope_strategy(scope=scope)
    counters = _code_counters(user, client)
    _code_backoff_check(counters)
    stored = AdminCode.objects.order_by("-id").values_list("code_hash", flat=True).first()
    refusal = ""
    if stored is None:
        refusal = "No admin code is set: run `manage.py killswitch set-admin-code` first"
    elif not admin_code or not check_password(admin_code, stored):
        label = strategy.name if strategy is not None else GLOBAL
        refusal = f"Wrong admin code: the kill switch ({label}) stays as it is"
    if refusal:
        _deactivation_refused(strategy, refusal, user=user)
        if stored is not None:
            _code_failure(counters, user=user, client=client, scope=strategy)
        raise PermissionDeniedError(
            refusal, details={"scope": strategy.name if strategy is not None else GLOBAL}
        )
    _code_success(counters)
    with transaction.atomic():
        state = _locked_state(strategy)
        if state.active:
            state.active = False
            state.deactivated_at, state.deactivated_by = timezone.now(), _user(user)
            state.save()
            _event(
                state,
                KillSwitchAction.DEACTIVATED,
                user=user,
                mode=state.mode,
                source=KillSwitchSource.MANUAL,
                reason=state.reason,
            )
    log.warning("risk.kill_switch.deactivated", scope=state.label)
    return state


def _deactivation_refused(strategy: Strategy | None, refusal: str, *, user: User) -> None:
    """The audit row of a refused deactivation, written without the kill-switch lock."""
    state = selectors.killswitch_get(scope=strategy if strategy is not None else GLOBAL)
    KillSwitchEvent.objects.create(
        scope=KillSwitchScope.STRATEGY if strategy is not None else GLOBAL,
        strategy=strategy,
        action=KillSwitchAction.DEACTIVATION_REFUSED,
        user=_user(user),
        source=KillSwitchSource.MANUAL,
        reason=refusal,
        details={"was_active": bool(state is not None and state.active)},
    )
    log.warning("risk.kill_switch.deactivation_refused", scope=getattr(state, "label", GLOBAL))


# --- the admin code's failure counters (the cache: Redis when configured, shared) ---------


def _clock() -> float:
    return time.time()


def _code_counters(user: User, client: str) -> list[str]:
    keys = []
    user_id = getattr(_user(user), "pk", None)
    keys.append(f"kill-switch-code:user:{user_id if user_id is not None else '-'}")
    if client:
        keys.append(f"kill-switch-code:client:{client}")
    return keys


def _code_backoff_check(counters: list[str]) -> None:
    """RateLimited while any counter's back-off runs: nothing is hashed, nothing locked."""
    now = _clock()
    waits = [
        entry["until"] - now
        for entry in cache.get_many(counters).values()
        if isinstance(entry, dict) and entry.get("until", 0) > now
    ]
    if waits:
        wait = max(1, math.ceil(max(waits)))
        raise RateLimited(f"Too many wrong admin codes: try again in {wait} s", retry_after=wait)


def _code_failure(counters: list[str], *, user: User, client: str, scope: Strategy | None) -> None:
    free = int(settings.KILL_SWITCH_CODE_FREE_FAILURES)
    base = float(settings.KILL_SWITCH_CODE_BACKOFF_SECONDS)
    cap = float(settings.KILL_SWITCH_CODE_BACKOFF_MAX_SECONDS)
    now = _clock()
    worst = 0
    for key in counters:
        entry = cache.get(key)
        failures = (entry.get("failures", 0) if isinstance(entry, dict) else 0) + 1
        until = now + min(cap, base * 2 ** (failures - free)) if failures >= free else 0.0
        # kept a day after the last failure (or the back-off's end when later)
        cache.set(
            key, {"failures": failures, "until": until}, timeout=int(max(until - now, 0)) + 86400
        )
        worst = max(worst, failures)
    if worst >= int(settings.KILL_SWITCH_CODE_ALERT_AFTER):
        who = getattr(_user(user), "get_username", lambda: "the system")()
        alert_raise_safely(
            severity="critical",
            source="risk.kill_switch",
            message=(
                f"{worst} wrong kill-switch admin codes in a row by {who}"
                + (f" from {client}" if client else "")
                + ": someone may be guessing it"
            ),
            key="kill-switch:admin-code-guessing",
            details={
                "failures": worst,
                "user": who,
                "client": client,
                "scope": scope.name if scope is not None else GLOBAL,
            },
        )


def _code_success(counters: list[str]) -> None:
    cache.delete_many(counters)


def admin_code_set(*, code: str, user: User = None) -> AdminCode:
    """Store a new admin code (its hash only); the newest code is the one that counts."""
    if not code or len(code) < ADMIN_CODE_MIN_LENGTH:
        raise ValidationError(f"code: use at least {ADMIN_CODE_MIN_LENGTH} characters")
    row = AdminCode.objects.create(code_hash=make_password(code), set_by=_user(user))
    log.warning("risk.admin_code.set", by=getattr(row.set_by, "pk", None))
    return row


def circuit_breaker_run(
    *, equity_points: Sequence[EquityPoint], opening_equity: Decimal | None = None
) -> DrawdownReading:
    """Check the portfolio's equity curve; activate the global kill switch when it asks.

    The daily-drawdown halt needs no action here: ``check_order`` rejects new entries itself.
    """
    breaker = CircuitBreaker(selectors.limits_current())
    breaker.check_drawdown(equity_points, opening_equity=opening_equity)
    trigger = breaker.trigger_if_threshold_breached()
    if trigger is not None and selectors.kill_switch_blocking(strategy_id=None) is None:
        killswitch_activate(
            scope=trigger.scope, reason=trigger.reason, flatten=trigger.flatten, source="auto"
        )
    assert breaker.reading is not None
    return breaker.reading
