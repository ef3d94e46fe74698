"""Reconciliation reads our books and the broker's one after the other: an order filling in
between is a mismatch gone a moment later. Found by the chaos test: such a passing mismatch
turned safe mode on and refused new entries until the next clean run (60 orders in one run).
Only a mismatch that a second comparison, after the open orders are brought up to date again,
still finds counts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quant.clock import ManualClock
from tests.trading.conftest import START
from tests.trading.factories import AcceptingBroker
from trading.brokers.base import BrokerPosition
from trading.models import SafeMode
from trading.services.reconcile import reconcile

pytestmark = pytest.mark.django_db


class MovingBroker(AcceptingBroker):
    """Reports the given positions one call after another (the last one from then on)."""

    def __init__(self, *answers: list[BrokerPosition]) -> None:
        super().__init__()
        self.answers = list(answers)

    async def get_positions(self) -> list[BrokerPosition]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


SPY_5 = [BrokerPosition("SPY", Decimal("5"), Decimal("100"))]


def test_a_mismatch_gone_at_the_second_look_is_not_one() -> None:
    broker = MovingBroker(SPY_5, [])  # a fill seen by the broker, then undone... or in flight

    run = reconcile(mode="paper", broker=broker, clock=ManualClock(START))

    assert run.matched and run.discrepancies == []
    assert not SafeMode.objects.filter(mode="paper", active=True).exists()


def test_a_mismatch_that_stays_turns_safe_mode_on() -> None:
    broker = MovingBroker(SPY_5)

    run = reconcile(mode="paper", broker=broker, clock=ManualClock(START))

    assert not run.matched
    assert run.discrepancies == [{"kind": "position", "symbol": "SPY", "local": "0", "broker": "5"}]
    assert SafeMode.objects.get(mode="paper").active
