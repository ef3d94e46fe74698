"""ASGI entry point: HTTP, and the dashboard's websocket (signed-in sessions only)."""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application
from django.urls import path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quant.settings")
django_asgi_app = get_asgi_application()

from monitoring.consumers import DashboardConsumer  # noqa: E402  (needs the apps loaded)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/dashboard/", DashboardConsumer.as_asgi())]))
        ),
    }
)
