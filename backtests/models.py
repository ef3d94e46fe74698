"""Models of the backtests app arrive with their issue; the app and its migrations package exist now."""
