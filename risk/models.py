"""Models of the risk app arrive with their issue; the app and its migrations package exist now."""
