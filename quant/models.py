"""Research models (strategies, approvals) arrive with the strategy issue."""
