"""Machine learning for trading: models, artifacts and leakage-proof cross-validation."""
