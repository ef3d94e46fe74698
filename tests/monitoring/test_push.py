"""Live updates: changed rows tell the "dashboard" group their topic after the commit; the
websocket admits signed-in users only; a failing channel layer never breaks a write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from pytest_django.fixtures import Settings as SettingsWrapper

from monitoring import push
from monitoring.consumers import DashboardConsumer
from monitoring.models import Alert
from risk.services import killswitch_activate


def _alert() -> Alert:
    now = datetime.now(UTC)
    return Alert.objects.create(
        severity="warning", source="test", key="k", message="m", first_seen=now, last_seen=now
    )


@pytest.mark.django_db
def test_a_committed_change_is_pushed_to_the_dashboard_group(
    settings: SettingsWrapper, django_capture_on_commit_callbacks: Any
) -> None:
    settings.REDIS_URL = "redis://push-enabled.invalid"  # the in-memory layer stands in
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(push.GROUP, channel)

    with django_capture_on_commit_callbacks(execute=True):
        _alert()
        killswitch_activate(reason="test push")

    messages = async_to_sync(_drain)(layer, channel)
    assert {m["type"] for m in messages} == {"dashboard.changed"}
    assert {"alerts", "killswitch"} <= {m["topic"] for m in messages}


async def _drain(layer: Any, channel: str) -> list[dict[str, Any]]:
    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(layer.receive(channel), timeout=0.2))
        except TimeoutError:
            return received


@pytest.mark.django_db
def test_nothing_is_pushed_without_redis(
    settings: SettingsWrapper, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    settings.REDIS_URL = ""
    sent: list[str] = []
    monkeypatch.setattr(push, "topic_send", sent.append)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _alert()
    assert sent == [] and callbacks == []


@pytest.mark.django_db
def test_a_failing_channel_layer_never_breaks_the_write(
    settings: SettingsWrapper, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    settings.REDIS_URL = "redis://push-enabled.invalid"

    class Broken:
        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            raise ConnectionError("Error 111 connecting to redis")

    monkeypatch.setattr("channels.layers.get_channel_layer", lambda *a: Broken())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        alert = _alert()
    assert len(callbacks) == 1 and Alert.objects.filter(pk=alert.pk).exists()


class _User:
    def __init__(self, authenticated: bool) -> None:
        self.is_authenticated = authenticated


@pytest.mark.asyncio
async def test_the_websocket_refuses_anonymous_users() -> None:
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/")
    communicator.scope["user"] = _User(authenticated=False)
    connected, code = await communicator.connect()
    assert not connected and code == 4401


@pytest.mark.asyncio
async def test_a_signed_in_websocket_receives_the_changed_topic() -> None:
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/")
    communicator.scope["user"] = _User(authenticated=True)
    connected, _ = await communicator.connect()
    assert connected
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(push.GROUP, {"type": push.MESSAGE_TYPE, "topic": "positions"})
    assert await communicator.receive_json_from(timeout=2) == {"topic": "positions"}
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_routed_websocket_needs_a_session() -> None:
    from config.asgi import application

    communicator = WebsocketCommunicator(
        application, "/ws/dashboard/", headers=[(b"origin", b"http://localhost")]
    )
    connected, _ = await communicator.connect()
    assert not connected
