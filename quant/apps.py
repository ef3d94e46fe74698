from django.apps import AppConfig


class QuantConfig(AppConfig):
    name = "quant"
    verbose_name = "Research"
