"""The dashboard's websocket (``ws/dashboard/``): signed-in users join the "dashboard" group
and receive ``{"topic": ...}`` whenever rows of that topic change (``monitoring.push``)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from monitoring.push import GROUP


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The page sends nothing; anything it does send is ignored."""

    async def dashboard_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"topic": event.get("topic", "")})
