"""Built-in strategies; importing this package registers them."""

from quant.strategies.builtin.mean_reversion import BollingerReversion, RsiReversion
from quant.strategies.builtin.ml_signal import MlSignal
from quant.strategies.builtin.momentum import Momentum
from quant.strategies.builtin.sma_crossover import SmaCrossover

__all__ = ["BollingerReversion", "MlSignal", "Momentum", "RsiReversion", "SmaCrossover"]
