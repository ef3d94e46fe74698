"""The Django-free backtest engine: data, fill model, both engine paths, metrics, reports."""

from backtests.engine.config import BacktestConfig, FillAt
from backtests.engine.data import MarketData
from backtests.engine.engine import BacktestCancelled, BacktestEngine, EngineMode, StrategyFailed
from backtests.engine.results import BacktestResult, PerformanceMetrics, Trade

__all__ = [
    "BacktestCancelled",
    "BacktestConfig",
    "BacktestEngine",
    "BacktestResult",
    "EngineMode",
    "FillAt",
    "MarketData",
    "PerformanceMetrics",
    "StrategyFailed",
    "Trade",
]
