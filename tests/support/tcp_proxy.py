"""A TCP proxy on 127.0.0.1 that a test controls: drop every connection, refuse new ones.

``TcpProxy("127.0.0.1", 5432)`` listens on an ephemeral port (``proxy.port``) and forwards
each connection to the target, one thread per connection (``select`` over both sockets, so
the proxy itself can reset them). Clients pointed at the proxy (a ``DATABASE_URL`` or a
``REDIS_URL`` with its port) see what a network failure looks like:

- ``drop()`` resets every current connection at once (``RST`` both ways: the client's next
  read or write fails, a server-side transaction is rolled back) and returns how many;
- ``block(seconds)`` refuses new connections for a while (accepted, then reset at once, as a
  restarting server would), or with ``hold=True`` keeps them waiting and forwards them
  when the block ends;
- ``stats`` counts connections accepted, forwarded, refused and dropped.

Used as a context manager it starts on entry and resets everything on exit.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

CHUNK = 65536
POLL_S = 0.05
CONNECT_TIMEOUT_S = 5.0


@dataclass
class ProxyStats:
    accepted: int = 0
    forwarded: int = 0
    refused: int = 0
    dropped: int = 0
    drops: int = 0
    """Calls of ``drop()``."""
    blocks: int = 0
    """Calls of ``block()``."""


def _reset(sock: socket.socket) -> None:
    """Close with ``SO_LINGER`` 0: the peer gets a reset, not an orderly end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One client connection and its upstream, pumped by one thread."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.reset_now = threading.Event()
        self.thread = threading.Thread(target=self.pump, name="tcp-proxy-link", daemon=True)

    def pump(self) -> None:
        peers = {self.client: self.upstream, self.upstream: self.client}
        try:
            while not self.reset_now.is_set():
                readable, _, broken = select.select(list(peers), [], list(peers), POLL_S)
                if broken:
                    break
                for sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        raise ConnectionResetError("closed by peer")
                    peers[sock].sendall(data)
        except OSError:
            pass
        finally:
            if self.reset_now.is_set():
                _reset(self.client)
                _reset(self.upstream)
            else:
                for sock in (self.client, self.upstream):
                    with contextlib.suppress(OSError):
                        sock.close()


class TcpProxy:
    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"
    ) -> None:
        self.target = (target_host, target_port)
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._blocked_until = 0.0
        self._hold = False
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self.host: str = listen_host
        self.port: int = self._listener.getsockname()[1]
        self._acceptor: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> Self:
        self._listener.listen(128)
        self._listener.settimeout(POLL_S * 4)
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting and reset every connection."""
        self._closed.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        self._drop_links()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # --- faults --------------------------------------------------------------------------

    def drop(self) -> int:
        """Reset every current connection at once; how many were reset."""
        dropped = self._drop_links()
        with self._lock:
            self.stats.drops += 1
            self.stats.dropped += dropped
        return dropped

    def block(self, seconds: float, *, hold: bool = False) -> None:
        """Refuse new connections for ``seconds`` (``hold``: make them wait instead, then
        forward them). Current connections are left alone (``drop()`` ends those)."""
        with self._lock:
            self._blocked_until = time.monotonic() + seconds
            self._hold = hold
            self.stats.blocks += 1

    def unblock(self) -> None:
        with self._lock:
            self._blocked_until = 0.0

    @property
    def blocked(self) -> bool:
        with self._lock:
            return time.monotonic() < self._blocked_until

    @property
    def connections(self) -> int:
        """Connections being forwarded now."""
        with self._lock:
            self._links = [link for link in self._links if link.thread.is_alive()]
            return len(self._links)

    # --- internals -----------------------------------------------------------------------

    def _drop_links(self) -> int:
        with self._lock:
            links, self._links = self._links, []
        live = [link for link in links if link.thread.is_alive()]
        for link in live:
            link.reset_now.set()
        for link in live:
            link.thread.join(timeout=2)
        return len(live)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self.stats.accepted += 1
            threading.Thread(
                target=self._connect, args=(client,), name="tcp-proxy-connect", daemon=True
            ).start()

    def _connect(self, client: socket.socket) -> None:
        while True:
            with self._lock:
                wait = self._blocked_until - time.monotonic()
                hold = self._hold
            if wait <= 0:
                break
            if not hold or self._closed.is_set():
                with self._lock:
                    self.stats.refused += 1
                _reset(client)
                return
            time.sleep(min(wait, POLL_S))
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            with self._lock:
                self.stats.refused += 1
            _reset(client)
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, upstream)
        with self._lock:
            if self._closed.is_set():
                link.reset_now.set()
            self._links.append(link)
            self.stats.forwarded += 1
        link.thread.start()
