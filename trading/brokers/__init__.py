"""Broker adapters behind one async interface (``base.BrokerClient``): simulated and Alpaca.

``broker_for_mode`` picks the adapter: paper trading uses the ``SimulatedBroker`` (embedded
default) unless ``TRADING_BROKER=alpaca`` (the default when ``ALPACA_API_KEY`` is set), which
sends paper orders to Alpaca's paper endpoint. Live trading always goes to Alpaca's live
endpoint and only when ``ALPACA_LIVE_TRADING_ENABLED`` is set; a strategy reaches live mode only
through the paper → live approval gate.
"""

from __future__ import annotations

from django.conf import settings

from quant.errors import ConfigurationError
from trading.brokers.base import BrokerClient

_cache: dict[str, BrokerClient] = {}


def broker_for_mode(mode: str) -> BrokerClient:
    if mode not in _cache:
        _cache[mode] = _build(mode)
    return _cache[mode]


def broker_override(mode: str, broker: BrokerClient | None) -> None:
    """Install (or with None, forget) the broker for a mode: tests and benchmarks."""
    if broker is None:
        _cache.pop(mode, None)
    else:
        _cache[mode] = broker


def _build(mode: str) -> BrokerClient:
    if mode == "live":
        from trading.brokers.alpaca import alpaca_broker_from_settings

        return alpaca_broker_from_settings(live=True)
    if mode != "paper":
        raise ConfigurationError(f"unknown trading mode {mode!r}")
    choice = settings.TRADING_BROKER
    if choice == "alpaca":
        from trading.brokers.alpaca import alpaca_broker_from_settings

        return alpaca_broker_from_settings(live=False)
    if choice == "simulated":
        from trading.brokers.simulated import simulated_broker_from_settings

        return simulated_broker_from_settings()
    raise ConfigurationError(f"TRADING_BROKER must be simulated or alpaca, got {choice!r}")
