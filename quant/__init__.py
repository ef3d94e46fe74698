"""The Django-free core: values, clock, calendar, errors, strategies, features, ML models,
cross-validation, the backtest engine, risk rules and the order state machine.

Importing it loads neither Django nor Celery (``tests/test_layers.py`` checks), so the engine
and the rules run and are benchmarked on their own."""
