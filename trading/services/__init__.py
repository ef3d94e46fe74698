"""Writes of the trading app: the order path, reconciliation, operator actions, the trading loop."""
