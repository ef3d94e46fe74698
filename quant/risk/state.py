"""May this strategy act now? Its trading state, decided in one function (free of Django).

Like NautilusTrader's ``TradingState``, one value answers for the risk gateway, the trading
loop and the order service alike, from what the database says at that moment:

- the **mode gate** (spec "Human-in-the-Loop Checkpoints"): a strategy in research places no
  orders; in paper it trades paper only; in live it trades live, and paper as well (a paper
  order risks nothing). Refused with ``gate_closed`` before anything is stored;
- the **kill switch**, global first, then the strategy's: no order at all (``kill_switch``);
- **safe mode** of the order's trading mode (reconciliation disagrees with the broker) and a
  **strategy pause** (its drawdown or daily-loss limit was breached): no new entries, exits
  still go (``safe_mode``, ``strategy_paused``).

The kill switch's own flattening (and an operator's flatten) always passes: reducing risk is
never blocked, whatever the mode or the switches say.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from quant.risk.rules import kill_switch_rejection
from quant.risk.values import KillSwitchView

RESEARCH, PAPER, LIVE = "research", "paper", "live"
TRADING_MODES = (PAPER, LIVE)
# The trading modes a strategy may place orders in, by its own mode.
MODES_ALLOWED: dict[str, tuple[str, ...]] = {RESEARCH: (), PAPER: (PAPER,), LIVE: (LIVE, PAPER)}

GATE_CLOSED = "gate_closed"
# The strategy limits whose breach pauses the strategy: until lifted, and for the session.
STRATEGY_DRAWDOWN, STRATEGY_DAILY_LOSS = "strategy_drawdown", "strategy_daily_loss"
PAUSE_CHECKS = (STRATEGY_DRAWDOWN, STRATEGY_DAILY_LOSS)


class TradingLevel(enum.StrEnum):
    ACTIVE = "active"  # may open and close positions
    REDUCING = "reducing"  # may only reduce risk (safe mode, a strategy pause)
    HALTED = "halted"  # no orders but the kill switch's own flattening


@dataclass(frozen=True)
class Refusal:
    """Why an order may not be placed: ``check`` is the error code, ``reason`` the message."""

    check: str
    reason: str


@dataclass(frozen=True)
class Pause:
    """A strategy pause stored when its drawdown or daily-loss limit was breached."""

    check: str
    reason: str
    since: datetime
    until: datetime | None = None  # None: until an operator lifts it

    def active(self, now: datetime) -> bool:
        return self.until is None or self.until > now

    @property
    def lasts(self) -> str:
        if self.until is None:
            return "until an operator lifts it"
        return f"until {self.until:%Y-%m-%d %H:%M} UTC"


def mode_refusal(strategy_name: str, strategy_mode: str, order_mode: str) -> Refusal | None:
    """The gate for one (strategy mode, order mode) pair; None when it is open."""
    if order_mode not in TRADING_MODES:
        return Refusal(GATE_CLOSED, f"Orders are placed in paper or live mode, not {order_mode!r}")
    if order_mode in MODES_ALLOWED.get(strategy_mode, ()):
        return None
    if strategy_mode == RESEARCH:
        return Refusal(
            GATE_CLOSED,
            f"Strategy {strategy_name} is in research mode: it places no orders until its "
            "promotion to paper is approved",
        )
    return Refusal(
        GATE_CLOSED,
        f"Strategy {strategy_name} is in {strategy_mode} mode: it trades live only after its "
        "promotion to live is approved",
    )


@dataclass(frozen=True)
class TradingState:
    """What governs one strategy's orders in one trading mode at one moment."""

    strategy_id: int
    strategy_name: str
    strategy_mode: str
    order_mode: str
    kill_switch: KillSwitchView = field(default_factory=KillSwitchView)
    safe_mode_reason: str | None = None
    pause: Pause | None = None

    @property
    def level(self) -> TradingLevel:
        if self.halt is not None:
            return TradingLevel.HALTED
        if self.safe_mode_reason is not None or self.pause is not None:
            return TradingLevel.REDUCING
        return TradingLevel.ACTIVE

    @property
    def gate(self) -> Refusal | None:
        return mode_refusal(self.strategy_name, self.strategy_mode, self.order_mode)

    @property
    def kill_switch_refusal(self) -> Refusal | None:
        stopped = kill_switch_rejection(self.kill_switch, self.strategy_id)
        return None if stopped is None else Refusal(stopped.check, stopped.reason)

    @property
    def halt(self) -> Refusal | None:
        """Why no order at all may be placed (closed gate, then kill switch), or None."""
        return self.gate or self.kill_switch_refusal

    def refusal(self, *, opening: bool, flattening: bool = False) -> Refusal | None:
        """Why an order may not be placed now, or None. In order: the flattening exemption,
        the mode gate, the kill switch, then (opening orders only) safe mode and the pause."""
        if flattening and not opening:
            return None
        halt = self.halt
        if halt is not None or not opening:
            return halt
        if self.safe_mode_reason is not None:
            return Refusal(
                "safe_mode",
                f"Safe mode: no new entries until reconciliation matches ({self.safe_mode_reason})",
            )
        if self.pause is not None:
            return Refusal(
                "strategy_paused", f"Strategy paused {self.pause.lasts}: {self.pause.reason}"
            )
        return None

    def describe(self) -> str:
        """One line for pages and logs: the level and what holds the strategy back."""
        halt = self.halt
        if halt is not None:
            return halt.reason
        if self.safe_mode_reason is not None:
            return f"Safe mode: {self.safe_mode_reason}"
        if self.pause is not None:
            return f"Paused {self.pause.lasts}: {self.pause.reason}"
        return "Trading"
