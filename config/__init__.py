"""The project shell: settings, URLs, the ASGI/WSGI entry points, the Celery app, the API root
and the wiring between apps. It may import every app; no app imports it."""

from config.celery import app as celery_app

__all__ = ["celery_app"]
