"""The quant trading platform: Django project package and the research app."""

from quant.celery import app as celery_app

__all__ = ["celery_app"]
