"""config.http.ThreadedWsgi: HTTP requests reach the WSGI app intact and answers go back whole."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from config.http import MAX_BODY_BYTES, ThreadedWsgi


def echo_app(environ: dict[str, Any], start_response: Any) -> Any:
    body = environ["wsgi.input"].read()
    start_response(
        "201 Created",
        [("Content-Type", "text/plain"), ("X-Thread", threading.current_thread().name)],
    )
    parts = [
        environ["REQUEST_METHOD"].encode(),
        environ["PATH_INFO"].encode(),
        environ["QUERY_STRING"].encode(),
        environ.get("HTTP_AUTHORIZATION", "").encode(),
        environ.get("CONTENT_TYPE", "").encode(),
        environ.get("REMOTE_ADDR", "").encode(),
        body,
    ]
    return iter([b"|".join(parts[:3]), b"|", b"|".join(parts[3:])])


def call(app: ThreadedWsgi, body_chunks: list[bytes], **scope: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for i, chunk in enumerate(body_chunks):
            await queue.put(
                {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
            )

        async def receive() -> dict[str, Any]:
            return await queue.get()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        base = {
            "type": "http",
            "method": "POST",
            "path": "/v1/orders",
            "query_string": b"a=1&b=%C3%A9",
            "http_version": "1.1",
            "headers": [
                (b"authorization", b"Bearer abc"),
                (b"content-type", b"application/json"),
            ],
            "client": ("10.1.2.3", 5555),
            "server": ("127.0.0.1", 8000),
        }
        await app({**base, **scope}, receive, send)

    asyncio.run(run())
    return sent


def test_the_request_and_the_answer_pass_through_whole() -> None:
    app = ThreadedWsgi(echo_app, threads=2)
    start, body = call(app, [b'{"a":', b" 1}"])
    assert start["status"] == 201
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/plain"
    assert headers[b"x-thread"].startswith(b"http")  # ran on a worker thread
    assert body["body"] == (
        b'POST|/v1/orders|a=1&b=%C3%A9|Bearer abc|application/json|10.1.2.3|{"a": 1}'
    )


def test_a_body_over_the_limit_is_refused_without_calling_the_app() -> None:
    called = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        called.append(True)
        return echo_app(environ, start_response)

    chunk = b"x" * (MAX_BODY_BYTES // 2 + 1)
    start, _ = call(ThreadedWsgi(app, threads=1), [chunk, chunk, chunk])
    assert start["status"] == 413 and not called


def test_websocket_scopes_are_not_served() -> None:
    with pytest.raises(ValueError, match="HTTP only"):
        call(ThreadedWsgi(echo_app, threads=1), [b""], type="websocket")


@pytest.mark.django_db
def test_django_answers_through_it() -> None:
    from django.core.wsgi import get_wsgi_application

    start, body = call(
        ThreadedWsgi(get_wsgi_application(), threads=1),
        [b""],
        method="GET",
        path="/v1/health",
        query_string=b"",
        headers=[(b"host", b"127.0.0.1")],
    )
    assert start["status"] == 401
    assert b'"unauthorized"' in body["body"]
