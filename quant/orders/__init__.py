"""Django-free trading core: the order state machine and position arithmetic."""
