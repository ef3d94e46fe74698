"""HTTP under the ASGI server: Django's WSGI handler on a fixed pool of threads.

Django's ASGI handler runs a sync view through its middleware with one thread hop per
middleware hook (``sync_to_async`` in ``MiddlewareMixin.__acall__``): about 30 hops per API
request, 5 ms and more of pure overhead, and each request in a new thread with a new database
connection. Every view and middleware here is sync, so HTTP goes to the WSGI handler
instead, in one hop onto a long-lived worker thread (persistent database connections work as
under any WSGI server). Websockets stay on Channels (``config.asgi``).

The response is collected in the worker thread and then sent: streaming responses (report
downloads) are buffered, which is fine at their size (a few MB).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_BODY_BYTES = 20 * 1024 * 1024


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ of one ASGI HTTP request (PEP 3333 over the ASGI scope)."""
    script_name = scope.get("root_path", "").encode("utf8").decode("latin1")
    path_info = scope["path"].encode("utf8").decode("latin1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    headers: dict[str, list[str]] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin1").lower()
        key = {"content-length": "CONTENT_LENGTH", "content-type": "CONTENT_TYPE"}.get(
            name, "HTTP_" + name.upper().replace("-", "_")
        )
        headers.setdefault(key, []).append(raw_value.decode("latin1"))
    for key, values in headers.items():
        environ[key] = ",".join(values)
    return environ


def run_wsgi(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Call the WSGI app and collect its whole answer (in a worker thread)."""
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started["status"], started["headers"] = status, headers
        return lambda data: chunks.append(data)

    chunks: list[bytes] = []
    result = app(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()  # fires request_finished: Django's end-of-request connection handling
    status = int(str(started["status"]).split(" ", 1)[0])
    headers = [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in started["headers"]]
    return status, headers, b"".join(chunks)


class ThreadedWsgi:
    """An ASGI app for HTTP scopes that runs a WSGI app on ``threads`` worker threads."""

    def __init__(self, app: WsgiApp, *, threads: int) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"ThreadedWsgi serves HTTP only, not {scope['type']!r}")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY_BYTES:
                await _send(send, 413, *too_large_answer(scope["path"]))
                return
            if not message.get("more_body"):
                break
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(
            self.executor, run_wsgi, self.app, wsgi_environ(scope, bytes(body))
        )
        await _send(send, status, headers, content)


def too_large_answer(path: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """413 before Django sees the body: the API's error envelope under ``/v1``, a short page
    elsewhere (the same answers as ``config.middleware`` gives for Django's own limit)."""
    message = f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes"
    if path.startswith("/v1/"):
        error = {"code": "payload_too_large", "message": message, "details": {}}
        error["details"] = {"limit_bytes": MAX_BODY_BYTES}
        return [(b"content-type", b"application/json")], json.dumps({"error": error}).encode()
    page = (
        f"<!doctype html><title>Request too large</title><h1>Request too large</h1><p>{message}</p>"
    )
    return [(b"content-type", b"text/html; charset=utf-8")], page.encode()


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
