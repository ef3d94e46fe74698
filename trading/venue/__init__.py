"""The simulated venue behind ``SimulatedBroker``: its book (accounts, orders, fills, positions)
lives in the database so web, worker and beat processes share one venue."""
