"""A tiny HTTP server on 127.0.0.1 for driving real vendor clients in tests, offline.

``LoopbackServer`` runs a ``ThreadingHTTPServer`` on an ephemeral port in a daemon thread.
Subclasses (``AlpacaServer``, ``PolygonServer``) register routes::

    server.route("GET", r"/v2/orders/(?P<order_id>[^/]+)", handler)

A handler receives the ``Request`` (with the regex's named groups in ``request.params``) and
returns ``(status, headers, body)``; a body that is not ``bytes``/``str``/``None`` is sent as
JSON (``Decimal`` as a JSON number, ``datetime`` as RFC 3339). Every request is logged in
``server.requests`` (thread-safe), faulted ones included. ``server.faults`` injects failures
in front of the routes: an HTTP status (with ``Retry-After``), a slow answer, or a
connection reset; with ``late=True`` the route runs first and only its answer is lost.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

ResponseHeaders = Mapping[str, str]
Response = tuple[int, ResponseHeaders, Any]
Handler = Callable[["Request"], Response]

# Exceptions a handler thread meets when the client has gone away (timeout, reset): expected.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class Headers(Mapping[str, str]):
    """Request headers: case-insensitive lookups, original spelling kept for display."""

    def __init__(self, items: Iterator[tuple[str, str]] | list[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


@dataclass
class Request:
    """One request as the server saw it; also the entry type of the request log."""

    method: str
    path: str
    query: dict[str, str]
    """Query parameters, last value of each name (see ``query_lists`` for repeated names)."""
    headers: Headers
    body: bytes
    time: float
    """``time.monotonic()`` when the request line was read."""
    query_lists: dict[str, list[str]] = field(default_factory=dict)
    raw_query: str = ""
    params: dict[str, str] = field(default_factory=dict)
    """Named groups of the route pattern that matched the path."""
    status: int | None = None
    """Status answered; ``None`` when the connection was reset or the client left first."""
    fault: str | None = None
    """Description of the injected fault that handled this request, if any."""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def target(self) -> str:
        return f"{self.path}?{self.raw_query}" if self.raw_query else self.path


class RequestLog:
    """Thread-safe list of ``Request`` entries with query helpers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Request] = []
        self._changed = threading.Condition(self._lock)

    def append(self, request: Request) -> None:
        with self._changed:
            self._entries.append(request)
            self._changed.notify_all()

    def all(self) -> list[Request]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[Request]:
        return iter(self.all())

    def __getitem__(self, index: int) -> Request:
        with self._lock:
            return self._entries[index]

    def filter(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
        path_regex: str | None = None,
        faulted: bool | None = None,
        status: int | None = None,
    ) -> list[Request]:
        """Entries matching every given criterion (``path`` is an exact match)."""
        return _select(
            self.all(),
            method=method,
            path=path,
            path_prefix=path_prefix,
            path_regex=path_regex,
            faulted=faulted,
            status=status,
        )

    def count(self, **criteria: Any) -> int:
        """Number of entries matching ``criteria`` (the keyword arguments of ``filter``)."""
        return len(self.filter(**criteria))

    def last(self, **criteria: Any) -> Request:
        matching = self.filter(**criteria)
        if not matching:
            raise LookupError(f"no logged request matches {criteria}")
        return matching[-1]

    def wait_for(self, count: int, *, timeout: float = 2.0, **criteria: Any) -> list[Request]:
        """Block until ``count`` entries match (for clients that run in another thread)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = _select(list(self._entries), **criteria)
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(matching)} of {count} requests matching {criteria}")
                self._changed.wait(remaining)


def _select(
    entries: list[Request],
    *,
    method: str | None = None,
    path: str | None = None,
    path_prefix: str | None = None,
    path_regex: str | None = None,
    faulted: bool | None = None,
    status: int | None = None,
) -> list[Request]:
    pattern = re.compile(path_regex) if path_regex else None
    return [
        r
        for r in entries
        if (method is None or r.method == method.upper())
        and (path is None or r.path == path)
        and (path_prefix is None or r.path.startswith(path_prefix))
        and (pattern is None or pattern.fullmatch(r.path))
        and (faulted is None or (r.fault is not None) == faulted)
        and (status is None or r.status == status)
    ]


@dataclass
class Fault:
    """One injected failure; see ``FaultInjector.add``."""

    status: int | None = None
    retry_after: float | str | None = None
    times: int | None = 1
    path_prefix: str | None = None
    method: str | None = None
    delay: float | None = None
    reset: bool = False
    after: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    late: bool = False
    seen: int = 0
    """Matching requests observed (including the ``after`` ones let through)."""
    fired: int = 0
    """Requests this fault actually handled."""

    def matches(self, request: Request) -> bool:
        return (self.path_prefix is None or request.path.startswith(self.path_prefix)) and (
            self.method is None or request.method == self.method.upper()
        )

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def describe(self) -> str:
        parts = ["after handling"] if self.late else []
        if self.delay:
            parts.append(f"delay {self.delay}s")
        if self.reset:
            parts.append("reset")
        if self.status is not None:
            parts.append(f"status {self.status}")
            if self.retry_after is not None:
                parts.append(f"Retry-After {self.retry_after}")
        return ", ".join(parts) or "slow"


class FaultInjector:
    """Failures served instead of (or before) the real handlers, first matching fault wins.

    Every active fault whose filters match a request counts it (``seen``); a fault fires
    once it has let ``after`` matching requests through, for ``times`` requests (``None``:
    forever). Faults fire in the order they were added.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        status: int | None = None,
        retry_after: float | str | None = None,
        times: int | None = 1,
        path_prefix: str | None = None,
        delay: float | None = None,
        reset: bool = False,
        after: int = 0,
        body: Any = None,
        *,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        late: bool = False,
    ) -> Fault:
        """Inject a failure.

        ``status``: answer that status instead of the real handler (a vendor-style JSON error
        body unless ``body`` is given; ``Retry-After`` when ``retry_after`` is given).
        ``delay``: sleep that many seconds first; alone, it makes a slow but real answer.
        ``reset``: close the socket abruptly (TCP RST) without answering.
        ``after``: let that many matching requests through first. ``times``: how many
        requests the fault applies to (``None`` = every later matching request).
        ``path_prefix``/``method``: only requests whose path starts with it / of that method.
        ``late``: run the real handler first (its effects stay: an order is stored), then
        apply the fault to its answer: delayed past the client's timeout, reset, or replaced
        by ``status``. This is "the broker accepted it, the answer never arrived".
        """
        if status is None and delay is None and not reset:
            raise ValueError("a fault needs a status, a delay or reset=True")
        if status is not None and reset:
            raise ValueError("a fault either answers a status or resets the connection")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        if after < 0:
            raise ValueError("after must be zero or more")
        fault = Fault(
            status=status,
            retry_after=retry_after,
            times=times,
            path_prefix=path_prefix,
            method=method,
            delay=delay,
            reset=reset,
            after=after,
            body=body,
            headers=dict(headers or {}),
            late=late,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults.remove(fault)

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def __len__(self) -> int:
        return len(self.active)

    def take(self, request: Request) -> Fault | None:
        """The fault that handles ``request`` (counting it), or None."""
        chosen: Fault | None = None
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(request):
                    continue
                fault.seen += 1
                if chosen is None and fault.seen > fault.after:
                    fault.fired += 1
                    chosen = fault
        return chosen


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def json_default(value: Any) -> Any:
    """JSON for vendor payloads: Decimal as a number (exact to float precision), RFC 3339 times."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def rfc3339(moment: datetime) -> str:
    """``2024-01-02T14:30:00Z`` (fractional seconds only when present), as vendors write it."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}")
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def encode_body(body: Any) -> tuple[bytes, str | None]:
    """Bytes to send and their default content type."""
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body, default=json_default).encode(), "application/json; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the vendors' servers
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add about 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.loopback._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.loopback._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log records everything; keep test output clean

    def _dispatch(self) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        lists = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in lists.items()},
            query_lists=lists,
            raw_query=parts.query,
            headers=Headers(list(self.headers.items())),
            body=body,
            time=started,
        )
        server = self.server.loopback
        server.requests.append(request)
        fault = server.faults.take(request)
        answer: Response | None = None
        if fault is not None:
            request.fault = fault.describe()
            if fault.late:  # the request takes effect first; only its answer is lost or late
                answer = self._handle(request)
            if fault.delay and server._stopping.wait(fault.delay):
                self._reset()
                return
            if fault.reset:
                self._reset()
                return
            if fault.status is not None:
                extra = dict(fault.headers)
                if fault.retry_after is not None:
                    extra["Retry-After"] = str(fault.retry_after)
                body_value = (
                    fault.body
                    if fault.body is not None
                    else server.error_body(fault.status, _reason(fault.status))
                )
                self._send(request, fault.status, extra, body_value)
                return
        status, headers, payload = answer if answer is not None else self._handle(request)
        self._send(request, status, headers, payload)

    def _handle(self, request: Request) -> Response:
        server = self.server.loopback
        try:
            return server.handle(request)
        except Exception as error:  # a handler bug must answer 500, loudly
            server.handler_errors.append(error)
            return 500, {}, server.error_body(500, f"handler error: {error!r}")

    def _send(self, request: Request, status: int, headers: ResponseHeaders, body: Any) -> None:
        data, content_type = encode_body(body)
        request.status = status  # before writing: the client may look at the log at once
        try:
            self.send_response(status)
            names = {name.lower() for name in headers}
            if content_type and "content-type" not in names:
                self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.wfile.flush()
        except _CLIENT_GONE:
            request.status = None
            self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0) and no answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket only really closes once its file objects are closed too.
        for stream in (self.rfile, self.wfile):
            with contextlib.suppress(OSError):
                stream.close()
        self.connection.close()
        self.rfile, self.wfile = io.BytesIO(), io.BytesIO()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return f"status {status}"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    loopback: LoopbackServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # a client that left, or a socket we reset on purpose
        super().handle_error(request, client_address)


class LoopbackServer:
    """An HTTP server on 127.0.0.1:<ephemeral port> with a route table, a log and faults.

    Use as a context manager or call ``start()``/``stop()``. Subclasses customise
    ``authorize`` (checked for every routed request, after faults) and ``error_body``
    (the vendor's error JSON shape).
    """

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.routes: list[Route] = []
        self.requests = RequestLog()
        self.faults = FaultInjector()
        self.handler_errors: list[Exception] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, 0), _Handler)
        httpd.loopback = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay fault
        httpd.shutdown()
        httpd.server_close()
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:  # unblock keep-alive handlers waiting for a request
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def url(self) -> str:
        """Origin of the server, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # -- routing -----------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> Handler:
        """Register ``handler`` for ``method`` and a path regex (matched in full).

        Registering the same method and pattern again replaces the earlier handler, so a
        test can override one endpoint of a vendor server.
        """
        compiled = re.compile(pattern)
        method = method.upper()
        new = Route(method, compiled, handler)
        for i, existing in enumerate(self.routes):
            if existing.method == method and existing.pattern.pattern == pattern:
                self.routes[i] = new
                return handler
        self.routes.append(new)
        return handler

    def handle(self, request: Request) -> Response:
        """Authorize, then dispatch to the first route matching the method and path."""
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            denied = self.authorize(request)
            if denied is not None:
                return denied
            request.params = {k: v for k, v in match.groupdict().items() if v is not None}
            return route.handler(request)
        if allowed:
            return (
                405,
                {"Allow": ", ".join(sorted(set(allowed)))},
                self.error_body(405, "method not allowed"),
            )
        return 404, {}, self.error_body(404, "endpoint not found")

    # -- hooks for vendor servers ---------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        """An error response to refuse ``request``, or None to let it through."""
        return None

    def error_body(self, status: int, message: str) -> Any:
        """The JSON body the vendor sends with an error status."""
        return {"message": message}


TimeKey = TypeVar("TimeKey", datetime, int)


class BarBook(Generic[TimeKey]):
    """Thread-safe store of a vendor's wire rows: symbol → series key → bar time → row."""

    def __init__(self) -> None:
        self._series: dict[str, dict[str, dict[TimeKey, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def put(self, symbol: str, key: str, rows: list[tuple[TimeKey, dict[str, Any]]]) -> int:
        with self._lock:
            series = self._series.setdefault(symbol.upper(), {}).setdefault(key, {})
            for ts, row in rows:
                series[ts] = row
        return len(rows)

    def clear(self, symbol: str | None = None) -> None:
        with self._lock:
            if symbol is None:
                self._series.clear()
            else:
                self._series.pop(symbol.upper(), None)

    def select(
        self,
        symbol: str,
        key: str,
        lo: TimeKey | None = None,
        hi: TimeKey | None = None,
        *,
        descending: bool = False,
    ) -> list[tuple[TimeKey, dict[str, Any]]]:
        """Copies of the rows with lo <= time <= hi, in time order."""
        with self._lock:
            series = self._series.get(symbol.upper(), {}).get(key, {})
            times = sorted(
                (t for t in series if (lo is None or t >= lo) and (hi is None or t <= hi)),
                reverse=descending,
            )
            return [(t, dict(series[t])) for t in times]
