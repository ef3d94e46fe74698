"""The Django-free backtest engine: data, fill model, both engine paths, metrics, reports."""

from quant.backtest.config import BacktestConfig, FillAt
from quant.backtest.data import MarketData
from quant.backtest.engine import BacktestCancelled, BacktestEngine, EngineMode, StrategyFailed
from quant.backtest.results import BacktestResult, PerformanceMetrics, Trade

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
