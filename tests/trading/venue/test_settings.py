"""``simulated_broker_from_settings``: the PAPER_* settings become the venue's fill model."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from quant.backtest import FillAt
from quant.errors import ConfigurationError
from trading.brokers.simulated import SimulatedBroker, simulated_broker_from_settings

D = Decimal


def test_defaults_are_the_backtest_defaults(settings: SettingsWrapper) -> None:
    for name in (
        "PAPER_STARTING_CASH",
        "PAPER_LATENCY_MS",
        "PAPER_SLIPPAGE_BPS",
        "PAPER_COMMISSION",
        "PAPER_MAX_VOLUME_PARTICIPATION",
    ):
        delattr(settings, name)

    broker = simulated_broker_from_settings()

    assert isinstance(broker, SimulatedBroker) and broker.name == "simulated"
    venue = broker.venue
    assert (venue.account, venue.starting_cash, venue.latency) == (
        "paper",
        D("100000"),
        timedelta(0),
    )
    config = venue.config
    assert (config.slippage_bps, config.commission_per_trade) == (D("10"), D("1.00"))
    assert config.max_volume_participation is None and config.fill_at is FillAt.CLOSE


def test_settings_are_read_exactly_zero_included(settings: SettingsWrapper) -> None:
    settings.PAPER_STARTING_CASH = "25000.50"
    settings.PAPER_LATENCY_MS = 250
    settings.PAPER_SLIPPAGE_BPS = "0"
    settings.PAPER_COMMISSION = "0"
    settings.PAPER_MAX_VOLUME_PARTICIPATION = "0.25"

    venue = simulated_broker_from_settings().venue

    assert venue.starting_cash == D("25000.50")
    assert venue.latency == timedelta(milliseconds=250)
    assert venue.config.slippage_bps == 0 and venue.config.commission_per_trade == 0
    assert venue.config.max_volume_participation == D("0.25")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PAPER_SLIPPAGE_BPS", "ten", "PAPER_SLIPPAGE_BPS must be a number, got 'ten'"),
        ("PAPER_COMMISSION", "-1", "PAPER_COMMISSION: must be a finite number >= 0"),
        (
            "PAPER_MAX_VOLUME_PARTICIPATION",
            "2",
            r"PAPER_MAX_VOLUME_PARTICIPATION: must be in \(0, 1\]",
        ),
        ("PAPER_STARTING_CASH", "0", "PAPER_STARTING_CASH: must be > 0"),
        ("PAPER_STARTING_CASH", "inf", "PAPER_STARTING_CASH must be a finite number"),
        ("PAPER_LATENCY_MS", -5, "PAPER_LATENCY_MS must be a whole number >= 0"),
    ],
)
def test_bad_settings_name_the_setting(
    name: str, value: object, message: str, settings: SettingsWrapper
) -> None:
    setattr(settings, name, value)

    with pytest.raises(ConfigurationError, match=message):
        simulated_broker_from_settings()
