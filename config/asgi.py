"""ASGI entry point: HTTP through Django's WSGI handler on worker threads (``config.http``),
and the dashboard's websocket on Channels (signed-in sessions only)."""

import gc
import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.urls import path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_wsgi_app = get_wsgi_application()

from config.http import ThreadedWsgi  # noqa: E402
from monitoring.consumers import DashboardConsumer  # noqa: E402  (needs the apps loaded)

# Everything imported so far lives as long as the process: keep it out of the cyclic garbage
# collector's full passes, whose pauses (tens of ms over Django, pandas and plotly) would
# otherwise stall every request in flight.
gc.freeze()

application = ProtocolTypeRouter(
    {
        "http": ThreadedWsgi(django_wsgi_app, threads=settings.WEB_THREADS),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/dashboard/", DashboardConsumer.as_asgi())]))
        ),
    }
)
