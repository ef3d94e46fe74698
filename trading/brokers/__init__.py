"""Broker adapters behind one async interface (``base.BrokerClient``): simulated and Alpaca."""
