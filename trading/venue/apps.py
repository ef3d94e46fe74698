from django.apps import AppConfig


class VenueConfig(AppConfig):
    name = "trading.venue"
    label = "trading_venue"
    verbose_name = "Simulated venue (paper trading)"
